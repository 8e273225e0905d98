import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createMemoryIdempotencyStore } from './idempotency-store.js';
import type { IdempotencyStore } from './idempotency-store.js';
import { createRedisIdempotencyStore } from './redis-idempotency-store.js';
import { createRedisClient, redisReady } from './redis-client.js';

let redis: Redis;
beforeAll(async () => {
  redis = createRedisClient(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  await redisReady(redis);
});
afterAll(() => redis.disconnect());

// One contract, both implementations.
describe.each([
  ['memory', () => createMemoryIdempotencyStore()],
  ['redis', () => createRedisIdempotencyStore(redis, `t-${randomUUID().slice(0, 8)}`)],
] as [string, () => IdempotencyStore][])('idempotency store contract: %s', (_name, make) => {
  it('claims a free key once; later callers see it running', async () => {
    const store = make();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => store.begin('k', 'f1', 5_000)),
    );
    expect(results.filter((r) => r.state === 'claimed')).toHaveLength(1);
    expect(results.filter((r) => r.state === 'running')).toHaveLength(19);
  });

  it('returns the saved result once complete', async () => {
    const store = make();
    await store.begin('k2', 'f1', 5_000);
    await store.complete('k2', 'f1', { content: [{ type: 'text', text: 'done' }] }, 60_000);
    expect(await store.begin('k2', 'f1', 5_000)).toEqual({
      state: 'done',
      fingerprint: 'f1',
      result: { content: [{ type: 'text', text: 'done' }] },
    });
  });

  it('frees a released key', async () => {
    const store = make();
    await store.begin('k3', 'f1', 5_000);
    await store.release('k3');
    expect((await store.begin('k3', 'f2', 5_000)).state).toBe('claimed');
  });
});
