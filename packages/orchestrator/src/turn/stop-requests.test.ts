import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createMemoryStopRequests,
  createRedisStopRequests,
  STOP_REQUEST_TTL_MS,
  type StopRequests,
} from './stop-requests.js';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: 1,
});
afterAll(() => redis.quit());

const prefix = `t-${randomUUID().slice(0, 8)}`;
describe.each<[string, () => StopRequests]>([
  ['memory', () => createMemoryStopRequests()],
  ['redis', () => createRedisStopRequests(redis, prefix)],
])('%s stop requests', (_name, make) => {
  it('a stop is seen for that turn only', async () => {
    const stops = make();
    expect(await stops.requested('s1', 't1')).toBe(false);
    await stops.request('s1', 't1');
    expect(await stops.requested('s1', 't1')).toBe(true);
    expect(await stops.requested('s1', 't2')).toBe(false);
    expect(await stops.requested('s2', 't1')).toBe(false);
  });
});

it('redis stop requests expire and share the session hash tag', async () => {
  await createRedisStopRequests(redis, prefix).request('s9', 't9');
  const key = `${prefix}:s:{s9}:stop:t9`;
  const ttl = await redis.pttl(key);
  expect(ttl).toBeGreaterThan(0);
  expect(ttl).toBeLessThanOrEqual(STOP_REQUEST_TTL_MS);
  await redis.del(key, `${prefix}:s:{s1}:stop:t1`);
});

it('memory stop requests expire', async () => {
  let now = 0;
  const stops = createMemoryStopRequests(() => now);
  await stops.request('s', 't');
  now = STOP_REQUEST_TTL_MS + 1;
  expect(await stops.requested('s', 't')).toBe(false);
});
