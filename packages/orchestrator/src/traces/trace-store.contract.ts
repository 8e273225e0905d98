/**
 * One contract suite for every {@link TraceStore} (DESIGN.md section 7: both stores pass one
 * shared suite). Call it from a test file with a factory that makes a fresh, empty store.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { TraceStore, TurnTrace } from './trace.js';
import { createTraceRecorder, type TraceIdGenerator } from './trace-recorder.js';

export interface TraceStoreUnderTest {
  readonly store: TraceStore;
  /** The store's per-session cap. */
  readonly maxPerSession: number;
  cleanup(): Promise<void>;
}

let counter = 0;
/** A unique id per call, so runs against a shared Redis never collide. */
function uniqueHex(length: number): string {
  counter += 1;
  const random = Math.random().toString(16).slice(2, 10).padStart(8, '0');
  const n = counter.toString(16).padStart(8, '0');
  return `${random}${n}`.padStart(length, 'e').slice(-length);
}

const ids: TraceIdGenerator = { traceId: () => uniqueHex(32), spanId: () => uniqueHex(16) };

function recordTurn(
  sessionId: string,
  turnId: string,
  startMs: number,
  finish?: 'ok' | 'error',
): { trace: TurnTrace; recorder: ReturnType<typeof createTraceRecorder> } {
  let t = startMs;
  const recorder = createTraceRecorder({
    sessionId,
    turnId,
    owner: { user: 'u1', tenant: 'acme' },
    now: () => t++,
    ids,
  });
  const turn = recorder.startSpan('turn', 'turn');
  const step = recorder.startSpan('step', 'chat m', {
    parentSpanId: turn,
    attributes: { 'gen_ai.request.model': 'm', 'gen_ai.response.finish_reasons': ['stop'] },
    payload: { messages: [{ role: 'user', content: 'hi' }] },
  });
  recorder.endSpan(step, { status: 'ok' });
  if (finish) recorder.finish(finish);
  return { trace: recorder.snapshot(), recorder };
}

/** Registers the shared trace store tests under `name`. */
export function traceStoreContract(name: string, make: () => Promise<TraceStoreUnderTest>): void {
  describe(`trace store contract: ${name}`, () => {
    let current: TraceStoreUnderTest | undefined;
    const setup = async () => (current = await make());
    afterEach(async () => {
      await current?.cleanup();
      current = undefined;
    });
    const session = () => `s-${uniqueHex(16)}`;

    it('saves and gets a trace back unchanged (spans, attributes, payloads)', async () => {
      const { store } = await setup();
      const { trace } = recordTurn(session(), 't1', 1_000, 'ok');
      await store.save(trace);
      expect(await store.get(trace.traceId)).toEqual(trace);
    });

    it('get answers undefined for an unknown id and for a malformed one', async () => {
      const { store } = await setup();
      expect(await store.get(uniqueHex(32))).toBeUndefined();
      expect(await store.get('../../etc')).toBeUndefined();
      expect(await store.get('*')).toBeUndefined();
    });

    it('lists a session newest first, with summaries, and nothing of other sessions', async () => {
      const { store } = await setup();
      const s = session();
      const a = recordTurn(s, 'turn-a', 1_000, 'ok').trace;
      const b = recordTurn(s, 'turn-b', 3_000, 'error').trace;
      const c = recordTurn(s, 'turn-c', 2_000).trace;
      const other = recordTurn(session(), 'turn-x', 4_000, 'ok').trace;
      for (const t of [a, b, c, other]) await store.save(t);
      const list = await store.listBySession(s);
      expect(list.map((x) => x.turnId)).toEqual(['turn-b', 'turn-c', 'turn-a']);
      expect(list[0]).toEqual({
        traceId: b.traceId,
        turnId: 'turn-b',
        startMs: 3_000,
        endMs: b.endMs,
        status: 'error',
      });
      expect(list[1]).toEqual({
        traceId: c.traceId,
        turnId: 'turn-c',
        startMs: 2_000,
        status: 'running',
      });
      expect(await store.listBySession(session())).toEqual([]);
    });

    it('re-saving a running trace overwrites it (body and summary), without a duplicate entry', async () => {
      const { store } = await setup();
      const s = session();
      const { trace: running, recorder } = recordTurn(s, 't1', 1_000);
      await store.save(running);
      expect((await store.listBySession(s))[0]!.status).toBe('running');
      const tool = recorder.startSpan('tool-call', 'execute_tool x');
      recorder.endSpan(tool, { status: 'ok' });
      recorder.finish('ok');
      const done = recorder.snapshot();
      await store.save(done);
      expect(await store.get(done.traceId)).toEqual(done);
      expect((await store.get(done.traceId))!.spans).toHaveLength(3);
      const list = await store.listBySession(s);
      expect(list).toHaveLength(1);
      expect(list[0]).toMatchObject({ traceId: done.traceId, status: 'ok', endMs: done.endMs });
    });

    it('honours the limit (and a zero or negative limit still returns one)', async () => {
      const { store } = await setup();
      const s = session();
      for (let i = 0; i < 5; i++)
        await store.save(recordTurn(s, `t${i}`, 1_000 + i * 10, 'ok').trace);
      expect((await store.listBySession(s, 2)).map((x) => x.turnId)).toEqual(['t4', 't3']);
      expect(await store.listBySession(s, 0)).toHaveLength(1);
      expect(await store.listBySession(s, 100)).toHaveLength(5);
    });

    it('keeps at most maxPerSession traces in the session index, dropping the oldest', async () => {
      const { store, maxPerSession } = await setup();
      const s = session();
      const total = maxPerSession + 3;
      for (let i = 0; i < total; i++) {
        await store.save(recordTurn(s, `t${i}`, 10_000 + i, 'ok').trace);
      }
      const list = await store.listBySession(s, total);
      expect(list).toHaveLength(maxPerSession);
      expect(list[0]!.turnId).toBe(`t${total - 1}`);
      expect(list.at(-1)!.turnId).toBe(`t${total - maxPerSession}`);
    });
  });
}
