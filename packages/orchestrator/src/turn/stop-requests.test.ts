import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createMemoryStopRequests,
  createRedisStopRequests,
  STOP_REQUEST_TTL_MS,
  type StopRequests,
} from './stop-requests.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const clients: Redis[] = [];
const client = () => {
  const c = new Redis(url, { maxRetriesPerRequest: 1 });
  clients.push(c);
  return c;
};
const stores: StopRequests[] = [];
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await Promise.all(clients.map((c) => c.quit()));
});

const prefix = `t-${randomUUID().slice(0, 8)}`;
const until = (check: () => boolean, ms = 2_000) =>
  new Promise<void>((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (check()) resolve();
      else if (Date.now() - start > ms) reject(new Error('not in time'));
      else setTimeout(tick, 5);
    };
    tick();
  });

describe.each<[string, () => [StopRequests, StopRequests]]>([
  [
    'memory',
    () => {
      const one = createMemoryStopRequests();
      return [one, one];
    },
  ],
  [
    'redis (two replicas)',
    () => {
      const a = createRedisStopRequests(client(), prefix);
      const b = createRedisStopRequests(client(), prefix);
      stores.push(a, b);
      return [a, b];
    },
  ],
])('%s stop requests', (_name, make) => {
  it('a stop requested on one replica reaches the watcher of that turn only', async () => {
    const [running, other] = make();
    let stopped = 0;
    let wrong = 0;
    const unwatch = running.watch('s1', 't1', () => (stopped += 1));
    running.watch('s1', 't2', () => (wrong += 1));
    await new Promise((r) => setTimeout(r, 50)); // the subscription is up
    await other.request('s1', 't1');
    await until(() => stopped === 1);
    expect(wrong).toBe(0);
    unwatch();
  });

  it('a stop requested before the watch began is seen', async () => {
    const [running, other] = make();
    await other.request('s2', 't9');
    let stopped = false;
    running.watch('s2', 't9', () => (stopped = true));
    await until(() => stopped);
  });
});

it('redis stop requests expire and share the session hash tag', async () => {
  const redis = client();
  const stops = createRedisStopRequests(redis, prefix);
  stores.push(stops);
  await stops.request('s9', 't9');
  const ttl = await redis.pttl(`${prefix}:s:{s9}:stop:t9`);
  expect(ttl).toBeGreaterThan(0);
  expect(ttl).toBeLessThanOrEqual(STOP_REQUEST_TTL_MS);
  await redis.del(
    `${prefix}:s:{s9}:stop:t9`,
    `${prefix}:s:{s1}:stop:t1`,
    `${prefix}:s:{s2}:stop:t9`,
  );
});

it('memory stop requests expire', async () => {
  let now = 0;
  const stops = createMemoryStopRequests(() => now);
  await stops.request('s', 't');
  now = STOP_REQUEST_TTL_MS + 1;
  let stopped = false;
  stops.watch('s', 't', () => (stopped = true));
  await new Promise((r) => setTimeout(r, 10));
  expect(stopped).toBe(false);
});
