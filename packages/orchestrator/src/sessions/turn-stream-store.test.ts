import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryTurnStreamStore } from './memory-turn-stream-store.js';
import { createRedisTurnStreamStore } from './redis-turn-stream-store.js';
import { turnStreamStoreContract } from './turn-stream-store.contract.js';
import { sessionKeys } from './session-keys.js';
import { redisTestBed } from './redis-test-kit.js';
import type { RedisTestBed } from './redis-test-kit.js';

turnStreamStoreContract('memory', async ({ now, maxLen, ttlMs }) => {
  const streams = createMemoryTurnStreamStore({ now, maxLen, ttlMs });
  return { streams, cleanup: () => streams.close() };
});

turnStreamStoreContract(
  'redis',
  async ({ maxLen, ttlMs }) => {
    const bed = await redisTestBed();
    const streams = createRedisTurnStreamStore({
      redis: bed.redis,
      prefix: bed.prefix,
      maxLen,
      ttlMs,
    });
    return {
      streams,
      async cleanup() {
        await streams.close();
        await bed.cleanup();
      },
    };
  },
  { realTime: true },
);

describe('memory turn streams', () => {
  it('gives monotonic <ms>-<seq> ids when the clock stands still or goes back', async () => {
    let t = 1_000;
    const streams = createMemoryTurnStreamStore({ now: () => t });
    expect(await streams.append('s', 't', 'a')).toBe('1000-0');
    expect(await streams.append('s', 't', 'b')).toBe('1000-1');
    t = 900;
    expect(await streams.append('s', 't', 'c')).toBe('1000-2');
    t = 2_000;
    expect(await streams.append('s', 't', 'd')).toBe('2000-0');
  });

  it('keeps exactly maxLen entries', async () => {
    const streams = createMemoryTurnStreamStore({ maxLen: 3 });
    for (let i = 0; i < 10; i++) await streams.append('s', 't', String(i));
    expect((await streams.read('s', 't')).entries.map((e) => e.data)).toEqual(['7', '8', '9']);
  });
});

describe('Redis turn streams', () => {
  const beds: RedisTestBed[] = [];
  afterEach(async () => {
    await Promise.all(beds.splice(0).map((b) => b.cleanup()));
  });
  const setup = async (options: { maxBlockingReaders?: number; ttlMs?: number } = {}) => {
    const bed = await redisTestBed();
    beds.push(bed);
    return { bed, streams: createRedisTurnStreamStore({ ...bed, ...options }) };
  };

  it('writes one capped Redis Stream per turn with a TTL, an end entry, and lastturn', async () => {
    const { bed, streams } = await setup({ ttlMs: 60_000 });
    const k = sessionKeys(bed.prefix, 's1');
    const id = await streams.append('s1', 'turn-1', '{"type":"start"}');
    await streams.end('s1', 'turn-1');
    const raw = await bed.redis.xrange(k.stream('turn-1'), '-', '+');
    expect(raw).toEqual([
      [id, ['d', '{"type":"start"}']],
      [expect.any(String), ['end', '1']],
    ]);
    expect(await bed.redis.pttl(k.stream('turn-1'))).toBeGreaterThan(55_000);
    expect(await bed.redis.get(k.lastTurn)).toBe('turn-1');
    expect(await bed.redis.smembers(k.turns)).toEqual(['turn-1']);
  });

  it('blocking reads do not stall other commands on the shared connection', async () => {
    const { bed, streams } = await setup();
    const readers = [1, 2, 3].map((i) => streams.read('s1', `t${i}`, { blockMs: 1_500 }));
    await new Promise((r) => setTimeout(r, 30));
    const started = Date.now();
    await bed.redis.ping();
    await streams.latestTurn('s1');
    expect(Date.now() - started).toBeLessThan(200);
    await streams.append('s1', 't2', 'x');
    const reads = await Promise.all(readers);
    expect(reads.map((r) => r.entries.length)).toEqual([0, 1, 0]);
    await streams.close();
  });

  it('past maxBlockingReaders, followers poll and still receive appends', async () => {
    const { streams } = await setup({ maxBlockingReaders: 0 });
    const pending = streams.read('s1', 't', { blockMs: 3_000 });
    await new Promise((r) => setTimeout(r, 30));
    const id = await streams.append('s1', 't', 'x');
    expect((await pending).entries).toEqual([{ id, data: 'x' }]);
    await streams.close();
  });
});
