import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createMemoryMeter } from '../metering/memory-meter.js';
import { createMemorySessionStore } from '../sessions/memory-session-store.js';
import { createMemoryTurnStreamStore } from '../sessions/memory-turn-stream-store.js';
import { assembleUiMessage } from '../stream/assemble-ui-message.js';
import type { UiMessageChunk } from '../stream/ui-message-chunks.js';
import { createMemoryTraceStore } from '../traces/memory-trace-store.js';
import { createTraceRecorder } from '../traces/trace-recorder.js';
import type { TurnEnvironment } from '../turn/turn-deps.js';
import { createTurnService } from './turn-service.js';

function setup() {
  let now = 1_000_000;
  const clock = () => now;
  const streams = createMemoryTurnStreamStore({ now: clock });
  const sessions = createMemorySessionStore({ now: clock, turnStreams: streams });
  const traces = createMemoryTraceStore({ now: clock });
  let n = 0;
  const env = {
    sessions,
    streams,
    traces,
    meter: createMemoryMeter({ now: clock }),
    logger: pino({ level: 'silent' }),
    now: clock,
    newId: () => `id${(n += 1)}`,
    newTrace: (input: Parameters<TurnEnvironment['newTrace']>[0]) =>
      createTraceRecorder({ ...input, now: clock }),
  } as unknown as TurnEnvironment;
  return { env, sessions, streams, traces, advance: (ms: number) => (now += ms) };
}

const owner = { user: 'u', tenant: 't' };

describe('turn service follow', () => {
  it('S34 a turn left unfinished by a dead process replays and is closed as interrupted, its partial answer saved', async () => {
    const { env, sessions, streams, traces, advance } = setup();
    await sessions.create({ id: 's1', agent: 'a', owner });
    // A "dead" replica ran turn t1: it wrote these chunks, then vanished.
    const recorder = createTraceRecorder({ sessionId: 's1', turnId: 't1', owner });
    await traces.save(recorder.snapshot());
    expect((await sessions.acquireTurn('s1', 't1', 1_000)).ok).toBe(true);
    const written: UiMessageChunk[] = [
      { type: 'start', messageId: 'm1', messageMetadata: { traceId: recorder.traceId } },
      { type: 'start-step' },
      { type: 'text-start', id: 'x' },
      { type: 'text-delta', id: 'x', delta: 'Half an ans' },
    ];
    for (const c of written) await streams.append('s1', 't1', JSON.stringify(c));
    advance(1_001); // the lock lapses

    const service = createTurnService(env);
    const frames: Array<[string, string]> = [];
    const followed = await service.follow('s1', {
      signal: new AbortController().signal,
      blockMs: 0,
      write: (id, json) => {
        frames.push([id, json]);
      },
    });
    expect(followed).toBe(true);
    const chunks = frames.map(([, json]) => JSON.parse(json) as UiMessageChunk);
    expect(chunks.slice(0, 4)).toEqual(written);
    expect(chunks.slice(4).map((c) => c.type)).toEqual(['text-end', 'error', 'finish']);
    const error = chunks.find((c) => c.type === 'error') as { errorText: string };
    expect(JSON.parse(error.errorText)).toMatchObject({
      code: 'UNAVAILABLE',
      retryable: true,
      details: { interrupted: true },
    });
    expect(new Set(frames.map(([id]) => id)).size).toBe(frames.length);
    expect(assembleUiMessage(chunks).parts).toContainEqual({
      type: 'text',
      text: 'Half an ans',
      state: 'done',
    });
    const stored = await sessions.readMessages('s1');
    expect(stored.at(-1)).toMatchObject({
      id: 'm1',
      role: 'assistant',
      metadata: { interrupted: true },
    });
    expect((await traces.get(recorder.traceId))?.status).toBe('interrupted');
    expect((await streams.read('s1', 't1')).ended).toBe(true);
    expect(await sessions.activeTurn('s1')).toBeUndefined();
    // Once closed, there is nothing left to resume.
    expect(
      await service.follow('s1', { signal: new AbortController().signal, write: () => undefined }),
    ).toBe(false);
  });

  it('resumable() finds a dead turn after its lock lapsed (the resume route asks it first), closes it, then has nothing', async () => {
    const { env, sessions, streams, advance } = setup();
    await sessions.create({ id: 's3', agent: 'a', owner });
    expect((await sessions.acquireTurn('s3', 't1', 1_000)).ok).toBe(true);
    await streams.append('s3', 't1', JSON.stringify({ type: 'start', messageId: 'm1' }));
    advance(5_000); // long after the lock lapsed
    const service = createTurnService(env);
    expect(await service.resumable('s3')).toBe('t1');
    const frames: string[] = [];
    await service.follow('s3', {
      turnId: 't1',
      signal: new AbortController().signal,
      blockMs: 0,
      write: (_id, json) => {
        frames.push(json);
      },
    });
    expect(frames.map((f) => (JSON.parse(f) as { type: string }).type)).toEqual([
      'start',
      'error',
      'finish',
    ]);
    expect(await service.resumable('s3')).toBeUndefined();
  });

  it('answers false (204) when no turn ever ran or the last one finished', async () => {
    const { env, sessions, streams } = setup();
    await sessions.create({ id: 's2', agent: 'a', owner });
    const service = createTurnService(env);
    const args = { signal: new AbortController().signal, write: () => undefined };
    expect(await service.follow('s2', args)).toBe(false);
    await streams.append('s2', 't1', JSON.stringify({ type: 'start' }));
    await streams.end('s2', 't1');
    expect(await service.follow('s2', args)).toBe(false);
  });
});
