import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisClient, redisReady } from '@keel/tool-sdk';
import { createMemoryTraceStore } from './memory-trace-store.js';
import { createRedisTraceStore } from './redis-trace-store.js';
import { traceStoreContract } from './trace-store.contract.js';
import { createTraceRecorder } from './trace-recorder.js';
import { DEFAULT_TRACE_TTL_MS } from './trace-store-limits.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const redis = createRedisClient(REDIS_URL);
afterAll(() => redis.disconnect());

async function deleteKeys(pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

// Contract traces start near epoch 0; a fixed clock keeps them inside the TTL window.
const contractNow = () => 20_000;

traceStoreContract('memory', async () => ({
  store: createMemoryTraceStore({ maxPerSession: 5, now: contractNow }),
  maxPerSession: 5,
  cleanup: async () => {},
}));

traceStoreContract('redis', async () => {
  await redisReady(redis);
  const prefix = `ktest-${randomUUID().slice(0, 8)}`;
  return {
    store: createRedisTraceStore({ redis, prefix, maxPerSession: 5, now: contractNow }),
    maxPerSession: 5,
    cleanup: () => deleteKeys(`${prefix}:*`),
  };
});

function trace(sessionId: string, startMs: number) {
  let t = startMs;
  const rec = createTraceRecorder({
    sessionId,
    turnId: 't1',
    owner: { user: 'u', tenant: 't' },
    now: () => t++,
  });
  rec.startSpan('turn', 'turn');
  rec.finish('ok');
  return rec.snapshot();
}

describe('redis trace store', () => {
  it('stores at keel:tr:<traceId> and keel:s:{<sessionId>}:traces, all with the 7-day TTL', async () => {
    await redisReady(redis);
    const store = createRedisTraceStore({ redis });
    const sessionId = `ktest-${randomUUID()}`;
    const t = trace(sessionId, Date.now());
    try {
      await store.save(t);
      const keys = [
        `keel:tr:${t.traceId}`,
        `keel:s:{${sessionId}}:traces`,
        `keel:s:{${sessionId}}:traces:sum`,
      ];
      expect(await redis.type(keys[1]!)).toBe('zset');
      expect(await redis.zscore(keys[1]!, t.traceId)).toBe(String(t.startMs));
      expect(JSON.parse((await redis.get(keys[0]!))!)).toEqual(t);
      for (const key of keys) {
        const pttl = await redis.pttl(key);
        expect(pttl).toBeGreaterThan(DEFAULT_TRACE_TTL_MS - 60_000);
        expect(pttl).toBeLessThanOrEqual(DEFAULT_TRACE_TTL_MS);
      }
    } finally {
      await redis.del(
        `keel:tr:${t.traceId}`,
        `keel:s:{${sessionId}}:traces`,
        `keel:s:{${sessionId}}:traces:sum`,
      );
    }
  });

  it('honours a configured ttlMs and lets the body expire', async () => {
    await redisReady(redis);
    const prefix = `ktest-${randomUUID().slice(0, 8)}`;
    const store = createRedisTraceStore({ redis, prefix, ttlMs: 60_000 });
    const t = trace('s1', Date.now());
    try {
      await store.save(t);
      const pttl = await redis.pttl(`${prefix}:tr:${t.traceId}`);
      expect(pttl).toBeGreaterThan(50_000);
      expect(pttl).toBeLessThanOrEqual(60_000);
      // Expiry itself is Redis's job; simulate it rather than sleep.
      await redis.del(`${prefix}:tr:${t.traceId}`);
      expect(await store.get(t.traceId)).toBeUndefined();
    } finally {
      await deleteKeys(`${prefix}:*`);
    }
  });

  it('drops index entries whose trace started more than a TTL ago', async () => {
    await redisReady(redis);
    const prefix = `ktest-${randomUUID().slice(0, 8)}`;
    let now = 1_000_000;
    const store = createRedisTraceStore({ redis, prefix, ttlMs: 10_000, now: () => now });
    try {
      const old = trace('s1', 995_000);
      const fresh = trace('s1', 1_004_000);
      await store.save(old);
      await store.save(fresh);
      expect(await store.listBySession('s1')).toHaveLength(2);
      now = 1_006_000;
      expect((await store.listBySession('s1')).map((s) => s.traceId)).toEqual([fresh.traceId]);
      expect(await redis.hexists(`${prefix}:s:{s1}:traces:sum`, old.traceId)).toBe(0);
    } finally {
      await deleteKeys(`${prefix}:*`);
    }
  });

  it('fails fast when Redis is unreachable', async () => {
    const down = createRedisClient('redis://127.0.0.1:1');
    try {
      const store = createRedisTraceStore({ redis: down });
      const started = Date.now();
      const unavailable = { code: 'UNAVAILABLE', retryable: true, name: 'TraceError' };
      await expect(store.save(trace('s1', 1))).rejects.toMatchObject(unavailable);
      await expect(store.get('a'.repeat(32))).rejects.toMatchObject(unavailable);
      await expect(store.listBySession('s1')).rejects.toMatchObject(unavailable);
      // The message names the step, not the address.
      await expect(store.get('a'.repeat(32))).rejects.toThrow('trace store unavailable (get)');
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      down.disconnect();
    }
  });
});

describe('memory trace store', () => {
  it('expires traces and index entries after the TTL (injected clock)', async () => {
    let now = 1_000_000;
    const store = createMemoryTraceStore({ ttlMs: 10_000, now: () => now });
    const old = trace('s1', 995_000);
    await store.save(old);
    const fresh = trace('s1', 1_004_000);
    now = 1_004_000;
    await store.save(fresh);
    now = 1_006_000;
    expect((await store.listBySession('s1')).map((s) => s.traceId)).toEqual([fresh.traceId]);
    expect(await store.get(old.traceId)).toBeDefined(); // saved at 1_000_000, lives until 1_010_000
    now = 1_010_000;
    expect(await store.get(old.traceId)).toBeUndefined();
    expect(await store.get(fresh.traceId)).toBeDefined();
    now = 1_014_000;
    expect(await store.get(fresh.traceId)).toBeUndefined();
    expect(await store.listBySession('s1')).toEqual([]);
  });

  it('returns copies: mutating a read trace does not change the store', async () => {
    const store = createMemoryTraceStore();
    const t = trace('s1', Date.now());
    await store.save(t);
    const read = (await store.get(t.traceId))!;
    (read.spans as unknown[]).length = 0;
    expect((await store.get(t.traceId))!.spans).toHaveLength(1);
  });
});
