/**
 * The one contract suite every {@link SessionStore} passes (DESIGN.md section 7): run from
 * `session-store.test.ts` against the memory and the Redis store.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { SessionStore, StoredMessage, TurnStreamStore } from './session-store.js';

export interface SessionStoreHarness {
  readonly sessions: SessionStore;
  /** Turn streams whose data the session's delete must remove. */
  readonly streams: TurnStreamStore;
  /** Closes the stores and removes anything the harness wrote. */
  cleanup(): Promise<void>;
}

export interface SessionStoreHarnessOptions {
  /** The clock the stores must use (epoch ms). */
  readonly now: () => number;
  readonly idleTtlMs: number;
}

export interface SessionStoreContractOptions {
  /**
   * Lets time pass for TTLs: the contract moves its clock by `ms` first; a store with real
   * expiry (Redis) also waits, so the contract keeps its TTLs short (≤ 400 ms).
   */
  readonly realTime?: boolean;
}

const message = (id: string, role: StoredMessage['role'] = 'user', text = id): StoredMessage => ({
  id,
  role,
  parts: [{ type: 'text', text, state: 'done' }],
});

export function sessionStoreContract(
  name: string,
  makeHarness: (options: SessionStoreHarnessOptions) => Promise<SessionStoreHarness>,
  contractOptions: SessionStoreContractOptions = {},
): void {
  describe(`SessionStore contract: ${name}`, () => {
    let clock = 1_700_000_000_000;
    const harnesses: SessionStoreHarness[] = [];
    const setup = async (idleTtlMs = 60_000) => {
      const h = await makeHarness({ now: () => clock, idleTtlMs });
      harnesses.push(h);
      return h;
    };
    const advance = async (ms: number) => {
      clock += ms;
      if (contractOptions.realTime) await new Promise((r) => setTimeout(r, ms));
    };
    const owner = () => ({ user: `u-${randomUUID()}`, tenant: `t-${randomUUID()}` });
    const sid = () => `s-${randomUUID()}`;
    afterEach(async () => {
      await Promise.all(harnesses.splice(0).map((h) => h.cleanup()));
    });

    it('creates, gets and lists own sessions newest first; another owner sees none of them', async () => {
      const { sessions } = await setup();
      const alice = owner();
      const bob = { user: `u-${randomUUID()}`, tenant: alice.tenant };
      const a1 = await sessions.create({
        id: sid(),
        agent: 'support',
        owner: alice,
        input: { PLAN: 'gold' },
      });
      expect(a1).toMatchObject({ agent: 'support', owner: alice, messageCount: 0 });
      expect(a1.input).toEqual({ PLAN: 'gold' });
      await advance(5);
      const a2 = await sessions.create({ id: sid(), agent: 'support', owner: alice });
      await advance(5);
      const b1 = await sessions.create({ id: sid(), agent: 'support', owner: bob });

      expect(await sessions.get(a1.id)).toEqual(a1);
      expect(await sessions.get(sid())).toBeUndefined();
      expect((await sessions.list(alice)).map((s) => s.id)).toEqual([a2.id, a1.id]);
      expect((await sessions.list(alice, { limit: 1 })).map((s) => s.id)).toEqual([a2.id]);
      expect((await sessions.list(bob)).map((s) => s.id)).toEqual([b1.id]);
      expect(await sessions.list(owner())).toEqual([]);

      // Writing to the older session moves it to the front.
      await advance(5);
      await sessions.appendMessage(a1.id, message('m1'));
      expect((await sessions.list(alice)).map((s) => s.id)).toEqual([a1.id, a2.id]);
    });

    it('refuses to create a session whose id exists (CONFLICT)', async () => {
      const { sessions } = await setup();
      const id = sid();
      await sessions.create({ id, agent: 'a', owner: owner() });
      await expect(sessions.create({ id, agent: 'b', owner: owner() })).rejects.toMatchObject({
        code: 'CONFLICT',
      });
      expect((await sessions.get(id))?.agent).toBe('a');
    });

    it('delete removes the session, its messages, lock, pending state, streams and list entry', async () => {
      const { sessions, streams } = await setup();
      const me = owner();
      const id = sid();
      await sessions.create({ id, agent: 'a', owner: me });
      await sessions.appendMessage(id, message('m1'));
      await sessions.acquireTurn(id, 'turn-1', 60_000);
      await sessions.savePending(id, { paused: true });
      await streams.append(id, 'turn-1', '{"type":"start"}');

      expect(await sessions.delete(id)).toBe(true);
      expect(await sessions.get(id)).toBeUndefined();
      expect(await sessions.readMessages(id)).toEqual([]);
      expect(await sessions.activeTurn(id)).toBeUndefined();
      expect(await sessions.peekPending(id)).toBeUndefined();
      expect(await streams.latestTurn(id)).toBeUndefined();
      expect((await streams.read(id, 'turn-1')).entries).toEqual([]);
      expect(await sessions.list(me)).toEqual([]);
      expect(await sessions.delete(id)).toBe(false);

      // The id can be used again, with nothing of the old session left.
      await sessions.create({ id, agent: 'a', owner: me });
      expect(await sessions.appendMessage(id, message('m1'))).toBe(true);
    });

    it('appends idempotently on message id: the same id twice is stored once and returns false', async () => {
      const { sessions } = await setup();
      const id = sid();
      await sessions.create({ id, agent: 'a', owner: owner() });
      await advance(3);
      expect(await sessions.appendMessage(id, message('m1'))).toBe(true);
      expect(await sessions.appendMessage(id, message('m1', 'user', 'changed'))).toBe(false);
      expect(await sessions.appendMessage(id, message('m2', 'assistant'))).toBe(true);
      expect(await sessions.readMessages(id)).toEqual([message('m1'), message('m2', 'assistant')]);
      const record = await sessions.get(id);
      expect(record?.messageCount).toBe(2);
      expect(record?.updatedAt).toBe(clock);
      expect(record!.updatedAt).toBeGreaterThan(record!.createdAt);
    });

    it('refuses to append to a missing session (NOT_FOUND)', async () => {
      const { sessions } = await setup();
      await expect(sessions.appendMessage(sid(), message('m1'))).rejects.toMatchObject({
        code: 'NOT_FOUND',
      });
    });

    it('reads the newest window of messages, oldest first', async () => {
      const { sessions } = await setup();
      const id = sid();
      await sessions.create({ id, agent: 'a', owner: owner() });
      for (let i = 0; i < 25; i++) await sessions.appendMessage(id, message(`m${i}`));
      const ids = (ms: StoredMessage[]) => ms.map((m) => m.id);
      expect(ids(await sessions.readMessages(id, 3))).toEqual(['m22', 'm23', 'm24']);
      expect(ids(await sessions.readMessages(id, 1))).toEqual(['m24']);
      expect(await sessions.readMessages(id, 0)).toEqual([]);
      expect(ids(await sessions.readMessages(id, 100))).toHaveLength(25);
      expect(ids(await sessions.readMessages(id))).toEqual(
        Array.from({ length: 25 }, (_, i) => `m${i}`),
      );
      expect(await sessions.readMessages(sid(), 10)).toEqual([]);
    });

    it('removes the last message only when its id matches', async () => {
      const { sessions } = await setup();
      const id = sid();
      await sessions.create({ id, agent: 'a', owner: owner() });
      await sessions.appendMessage(id, message('q1'));
      await sessions.appendMessage(id, message('a1', 'assistant'));
      expect(await sessions.removeLastMessage(id, 'q1')).toBe(false);
      expect(await sessions.removeLastMessage(id, 'nope')).toBe(false);
      expect((await sessions.readMessages(id)).map((m) => m.id)).toEqual(['q1', 'a1']);
      expect(await sessions.removeLastMessage(id, 'a1')).toBe(true);
      expect((await sessions.readMessages(id)).map((m) => m.id)).toEqual(['q1']);
      expect((await sessions.get(id))?.messageCount).toBe(1);
      // The removed id may be appended again (a regenerated answer).
      expect(await sessions.appendMessage(id, message('a1', 'assistant', 'again'))).toBe(true);
      expect((await sessions.readMessages(id, 1))[0]).toEqual(message('a1', 'assistant', 'again'));
      expect(await sessions.removeLastMessage(sid(), 'a1')).toBe(false);
    });

    it('holds one turn at a time: a second acquire fails with the holder and retryAfterMs > 0', async () => {
      const { sessions } = await setup();
      const id = sid();
      await sessions.create({ id, agent: 'a', owner: owner() });
      expect(await sessions.acquireTurn(id, 'turn-1', 30_000)).toEqual({ ok: true });
      expect(await sessions.activeTurn(id)).toBe('turn-1');
      const second = await sessions.acquireTurn(id, 'turn-2', 30_000);
      expect(second.ok).toBe(false);
      if (second.ok) return;
      expect(second.activeTurnId).toBe('turn-1');
      expect(second.retryAfterMs).toBeGreaterThanOrEqual(1_000);
      expect(second.retryAfterMs).toBeLessThanOrEqual(30_000);
    });

    it('renews and releases only for the holder', async () => {
      const { sessions } = await setup();
      const id = sid();
      await sessions.create({ id, agent: 'a', owner: owner() });
      await sessions.acquireTurn(id, 'turn-1', 30_000);
      expect(await sessions.renewTurn(id, 'turn-2', 30_000)).toBe(false);
      await sessions.releaseTurn(id, 'turn-2');
      expect(await sessions.activeTurn(id)).toBe('turn-1');
      expect(await sessions.renewTurn(id, 'turn-1', 30_000)).toBe(true);
      await sessions.releaseTurn(id, 'turn-1');
      expect(await sessions.activeTurn(id)).toBeUndefined();
      expect(await sessions.renewTurn(id, 'turn-1', 30_000)).toBe(false);
      expect(await sessions.acquireTurn(id, 'turn-2', 30_000)).toEqual({ ok: true });
    });

    it('lets the lock expire after its TTL unless renewed', async () => {
      const { sessions } = await setup();
      const id = sid();
      await sessions.create({ id, agent: 'a', owner: owner() });
      await sessions.acquireTurn(id, 'turn-1', 200);
      await advance(80);
      expect(await sessions.renewTurn(id, 'turn-1', 200)).toBe(true);
      await advance(80);
      // Renewed 80 ms ago for 200 ms: still held (without the renewal it would have expired).
      expect((await sessions.acquireTurn(id, 'turn-2', 200)).ok).toBe(false);
      await advance(300);
      expect(await sessions.activeTurn(id)).toBeUndefined();
      expect(await sessions.renewTurn(id, 'turn-1', 200)).toBe(false);
      expect(await sessions.acquireTurn(id, 'turn-2', 200)).toEqual({ ok: true });
    });

    it('expires an idle session after its TTL; every write and get refreshes it', async () => {
      const { sessions } = await setup(300);
      const id = sid();
      await sessions.create({ id, agent: 'a', owner: owner() });
      await advance(180);
      await sessions.appendMessage(id, message('m1'));
      await advance(180);
      expect((await sessions.get(id))?.messageCount).toBe(1);
      await advance(180);
      await sessions.savePending(id, { step: 1 });
      await advance(180);
      expect(await sessions.peekPending(id)).toEqual({ step: 1 });
      expect((await sessions.readMessages(id)).map((m) => m.id)).toEqual(['m1']);
      await advance(400);
      expect(await sessions.get(id)).toBeUndefined();
      expect(await sessions.readMessages(id)).toEqual([]);
      expect(await sessions.peekPending(id)).toBeUndefined();
    });

    it('keeps pending state until taken, and take is one-shot', async () => {
      const { sessions } = await setup();
      const id = sid();
      await sessions.create({ id, agent: 'a', owner: owner() });
      expect(await sessions.takePending(id)).toBeUndefined();
      const state = { toolCallId: 'c1', input: { amount: 5 }, nested: [1, 'two'] };
      await sessions.savePending(id, state);
      expect(await sessions.peekPending(id)).toEqual(state);
      expect(await sessions.peekPending(id)).toEqual(state);
      const takes = await Promise.all([sessions.takePending(id), sessions.takePending(id)]);
      expect(takes.filter((t) => t !== undefined)).toEqual([state]);
      expect(await sessions.takePending(id)).toBeUndefined();
      expect(await sessions.peekPending(id)).toBeUndefined();
      await expect(sessions.savePending(sid(), state)).rejects.toMatchObject({
        code: 'NOT_FOUND',
      });
    });
  });
}
