/**
 * The one contract suite every {@link TurnStreamStore} passes: run from
 * `turn-stream-store.test.ts` against the memory and the Redis store.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { TurnStreamStore } from './session-store.js';
import { compareEntryIds } from './stream-entry-id.js';

export interface TurnStreamHarness {
  readonly streams: TurnStreamStore;
  cleanup(): Promise<void>;
}

export interface TurnStreamHarnessOptions {
  readonly now: () => number;
  readonly maxLen: number;
  readonly ttlMs: number;
}

export interface TurnStreamContractOptions {
  /** The store's TTLs are real (Redis): letting time pass also waits. */
  readonly realTime?: boolean;
}

const chunk = (i: number) => JSON.stringify({ type: 'text-delta', id: 't', delta: `d${i}` });

export function turnStreamStoreContract(
  name: string,
  makeHarness: (options: TurnStreamHarnessOptions) => Promise<TurnStreamHarness>,
  contractOptions: TurnStreamContractOptions = {},
): void {
  describe(`TurnStreamStore contract: ${name}`, () => {
    let clock = 1_700_000_000_000;
    const harnesses: TurnStreamHarness[] = [];
    const setup = async (options: Partial<Omit<TurnStreamHarnessOptions, 'now'>> = {}) => {
      const h = await makeHarness({
        now: () => clock,
        maxLen: options.maxLen ?? 10_000,
        ttlMs: options.ttlMs ?? 60_000,
      });
      harnesses.push(h);
      return h.streams;
    };
    const advance = async (ms: number) => {
      clock += ms;
      if (contractOptions.realTime) await new Promise((r) => setTimeout(r, ms));
    };
    const sid = () => `s-${randomUUID()}`;
    afterEach(async () => {
      await Promise.all(harnesses.splice(0).map((h) => h.cleanup()));
    });

    it('appends and reads from the start, in order, with increasing entry ids', async () => {
      const streams = await setup();
      const s = sid();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await streams.append(s, 'turn-1', chunk(i)));
      for (let i = 1; i < ids.length; i++) {
        expect(compareEntryIds(ids[i]!, ids[i - 1]!)).toBeGreaterThan(0);
      }
      const read = await streams.read(s, 'turn-1');
      expect(read.ended).toBe(false);
      expect(read.entries).toEqual(ids.map((id, i) => ({ id, data: chunk(i) })));
      // Another turn and another session are separate streams.
      expect((await streams.read(s, 'turn-2')).entries).toEqual([]);
      expect((await streams.read(sid(), 'turn-1')).entries).toEqual([]);
    });

    it('ended() tells whether the turn has its end marker', async () => {
      const streams = await setup();
      const s = sid();
      expect(await streams.ended(s, 't')).toBe(false);
      await streams.append(s, 't', chunk(0));
      expect(await streams.ended(s, 't')).toBe(false);
      await streams.end(s, 't');
      expect(await streams.ended(s, 't')).toBe(true);
    });

    it('appendMany adds chunks in order after earlier ones, with increasing ids', async () => {
      const streams = await setup();
      const s = sid();
      const first = await streams.append(s, 't', chunk(0));
      const many = await streams.appendMany(s, 't', [chunk(1), chunk(2), chunk(3)]);
      expect(many).toHaveLength(3);
      expect(await streams.appendMany(s, 't', [])).toEqual([]);
      const ids = [first, ...many];
      for (let i = 1; i < ids.length; i++) {
        expect(compareEntryIds(ids[i]!, ids[i - 1]!)).toBeGreaterThan(0);
      }
      expect((await streams.read(s, 't')).entries).toEqual(
        ids.map((id, i) => ({ id, data: chunk(i) })),
      );
      expect(await streams.latestTurn(s)).toBe('t');
    });

    it('reads strictly after an entry id, and at most `count` entries', async () => {
      const streams = await setup();
      const s = sid();
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push(await streams.append(s, 't', chunk(i)));
      const after = await streams.read(s, 't', { after: ids[2] });
      expect(after.entries.map((e) => e.id)).toEqual(ids.slice(3));
      const page = await streams.read(s, 't', { after: ids[0], count: 2 });
      expect(page.entries.map((e) => e.data)).toEqual([chunk(1), chunk(2)]);
      expect((await streams.read(s, 't', { after: ids[5] })).entries).toEqual([]);
    });

    it('a blocking read receives a later append at once', async () => {
      const streams = await setup();
      const s = sid();
      const first = await streams.append(s, 't', chunk(0));
      const started = Date.now();
      const pending = streams.read(s, 't', { after: first, blockMs: 5_000 });
      await new Promise((r) => setTimeout(r, 30));
      // The append must not wait behind the blocked read.
      const second = await streams.append(s, 't', chunk(1));
      expect(Date.now() - started).toBeLessThan(2_000);
      const read = await pending;
      expect(read.entries).toEqual([{ id: second, data: chunk(1) }]);
      expect(Date.now() - started).toBeLessThan(2_000);
    });

    it('a blocking read on an empty stream returns nothing after blockMs', async () => {
      const streams = await setup();
      const read = await streams.read(sid(), 't', { blockMs: 30 });
      expect(read).toEqual({ entries: [], ended: false });
    });

    it('the end marker stops readers: entries before it, then ended, without waiting', async () => {
      const streams = await setup();
      const s = sid();
      const ids = [await streams.append(s, 't', chunk(0)), await streams.append(s, 't', chunk(1))];
      await streams.end(s, 't');
      expect(await streams.read(s, 't')).toEqual({
        entries: ids.map((id, i) => ({ id, data: chunk(i) })),
        ended: true,
      });
      const started = Date.now();
      expect(await streams.read(s, 't', { after: ids[1], blockMs: 5_000 })).toEqual({
        entries: [],
        ended: true,
      });
      expect(Date.now() - started).toBeLessThan(1_000);
    });

    it('a follower blocked on the stream wakes when the turn ends', async () => {
      const streams = await setup();
      const s = sid();
      const last = await streams.append(s, 't', chunk(0));
      const pending = streams.read(s, 't', { after: last, blockMs: 5_000 });
      await new Promise((r) => setTimeout(r, 30));
      await streams.end(s, 't');
      expect(await pending).toEqual({ entries: [], ended: true });
    });

    it('an abort signal ends a blocking read at once, and the store keeps working', async () => {
      const streams = await setup();
      const s = sid();
      const last = await streams.append(s, 't', chunk(0));
      const controller = new AbortController();
      const started = Date.now();
      const pending = streams.read(s, 't', {
        after: last,
        blockMs: 10_000,
        signal: controller.signal,
      });
      setTimeout(() => controller.abort(), 30);
      expect(await pending).toEqual({ entries: [], ended: false });
      expect(Date.now() - started).toBeLessThan(2_000);
      // An already aborted signal does not wait at all.
      expect(
        await streams.read(s, 't', { after: last, blockMs: 10_000, signal: controller.signal }),
      ).toEqual({ entries: [], ended: false });
      const next = await streams.append(s, 't', chunk(1));
      expect((await streams.read(s, 't', { after: last, blockMs: 1_000 })).entries).toEqual([
        { id: next, data: chunk(1) },
      ]);
    });

    it('close() ends a blocking read at once', async () => {
      const streams = await setup();
      const s = sid();
      const last = await streams.append(s, 't', chunk(0));
      const started = Date.now();
      const pending = streams.read(s, 't', { after: last, blockMs: 10_000 });
      await new Promise((r) => setTimeout(r, 30));
      await streams.close();
      expect(await pending).toEqual({ entries: [], ended: false });
      expect(Date.now() - started).toBeLessThan(2_000);
    });

    it('several followers of one turn all receive the same append', async () => {
      const streams = await setup();
      const s = sid();
      const last = await streams.append(s, 't', chunk(0));
      const readers = [1, 2, 3].map(() => streams.read(s, 't', { after: last, blockMs: 5_000 }));
      await new Promise((r) => setTimeout(r, 50));
      const id = await streams.append(s, 't', chunk(1));
      for (const read of await Promise.all(readers)) {
        expect(read.entries).toEqual([{ id, data: chunk(1) }]);
      }
    });

    it('respects the cap: old entries are trimmed, the newest kept', async () => {
      const streams = await setup({ maxLen: 50 });
      const s = sid();
      let last = '';
      for (let i = 0; i < 1_000; i++) last = await streams.append(s, 't', chunk(i));
      const { entries } = await streams.read(s, 't', { count: 10_000 });
      // Redis trims approximately (`MAXLEN ~`, whole nodes of up to 100 entries).
      expect(entries.length).toBeGreaterThanOrEqual(50);
      expect(entries.length).toBeLessThanOrEqual(250);
      expect(entries.at(-1)).toEqual({ id: last, data: chunk(999) });
    });

    it('names the latest turn of a session that has a stream', async () => {
      const streams = await setup();
      const s = sid();
      expect(await streams.latestTurn(s)).toBeUndefined();
      await streams.append(s, 'turn-1', chunk(0));
      expect(await streams.latestTurn(s)).toBe('turn-1');
      await streams.end(s, 'turn-1');
      expect(await streams.latestTurn(s)).toBe('turn-1');
      await streams.append(s, 'turn-2', chunk(0));
      expect(await streams.latestTurn(s)).toBe('turn-2');
      expect(await streams.latestTurn(sid())).toBeUndefined();
    });

    it('expires a stream after its TTL from the last append', async () => {
      const streams = await setup({ ttlMs: 200 });
      const s = sid();
      await streams.append(s, 't', chunk(0));
      await advance(120);
      await streams.append(s, 't', chunk(1));
      await advance(120);
      expect((await streams.read(s, 't')).entries).toHaveLength(2);
      await advance(250);
      expect((await streams.read(s, 't')).entries).toEqual([]);
      expect(await streams.latestTurn(s)).toBeUndefined();
    });
  });
}
