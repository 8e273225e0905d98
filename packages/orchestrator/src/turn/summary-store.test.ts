import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createMemorySummaryStore,
  createRedisSummaryStore,
  type SummaryStore,
} from './summary-store.js';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: 1,
});
afterAll(() => redis.quit());
const prefix = `t-${randomUUID().slice(0, 8)}`;

describe.each<[string, () => SummaryStore]>([
  ['memory', () => createMemorySummaryStore()],
  ['redis', () => createRedisSummaryStore(redis, { prefix, ttlMs: 60_000 })],
])('%s summary store', (_name, make) => {
  it('keeps one running summary per session, deleted with it', async () => {
    const store = make();
    expect(await store.get('s1')).toBeUndefined();
    await store.set('s1', { covered: 4, text: 'Ada asked about order 7.' });
    expect(await store.get('s1')).toEqual({ covered: 4, text: 'Ada asked about order 7.' });
    expect(await store.get('s2')).toBeUndefined();
    await store.delete('s1');
    expect(await store.get('s1')).toBeUndefined();
  });
});

it('the redis summary sits under the session hash tag with a TTL', async () => {
  await createRedisSummaryStore(redis, { prefix, ttlMs: 60_000 }).set('s3', {
    covered: 1,
    text: 'x',
  });
  const ttl = await redis.pttl(`${prefix}:s:{s3}:summary`);
  expect(ttl).toBeGreaterThan(0);
  expect(ttl).toBeLessThanOrEqual(60_000);
  await redis.del(`${prefix}:s:{s3}:summary`);
});
