/** What only the Redis meter has: its key layout and TTLs, retry safety, and failing closed. */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { ModelUsage } from './meter.js';
import { MeterUnavailableError } from './meter-error.js';
import { createRedisMeter } from './redis-meter.js';
import { meterRedisOptions } from './redis-options.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `keel-test:meter-redis:${randomUUID()}`;
const redis = new Redis(REDIS_URL, meterRedisOptions({ enableOfflineQueue: true }));
const DAY = 24 * 3_600_000;
const AT = Date.UTC(2026, 2, 15, 12, 0, 0);

afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

const usage: ModelUsage = {
  model: 'gpt-4.1-mini',
  provider: 'openai',
  inputTokens: 10,
  outputTokens: 5,
  cacheReadTokens: 0,
  cacheWriteTokens: 0,
  costUsd: 0.02,
};

describe('Redis meter', () => {
  it('keeps every counter of a tenant under one hash tag {t:<tenant>}, with the documented keys and TTLs', async () => {
    const tenant = `ten-${randomUUID()}`;
    const meter = createRedisMeter({ redis, prefix, now: () => AT, ids: () => 'r1' });
    const scope = { tenant, user: 'alice', sessionId: 's1' };
    const r = await meter.reserve(scope, { sessionUsd: 1 }, 0.05);
    if (!r.ok) throw new Error('refused');
    await meter.settle(r.reservation, usage);

    const tag = `{t:${tenant}}`;
    const keys = (await redis.keys(`${prefix}:*`)).filter((k) => k.includes(tenant)).sort();
    expect(keys).toEqual(
      [
        `${prefix}:b:${tag}:r:r1`,
        `${prefix}:b:${tag}:s:s1`,
        `${prefix}:b:${tag}:tm:2026-03`,
        `${prefix}:b:${tag}:ud:alice:2026-03-15`,
        `${prefix}:u:${tag}:ix:d:alice`,
        `${prefix}:u:${tag}:ix:m:alice`,
        `${prefix}:u:${tag}:ix:s:alice`,
        `${prefix}:u:${tag}:s:s1`,
        `${prefix}:u:${tag}:td:2026-03-15`,
        `${prefix}:u:${tag}:tmm:2026-03:gpt-4.1-mini`,
        `${prefix}:u:${tag}:ud:alice:2026-03-15`,
        `${prefix}:u:${tag}:um:alice:gpt-4.1-mini`,
      ].sort(), // the holds set is gone: Redis drops an empty sorted set
    );
    expect(await redis.hgetall(`${prefix}:b:${tag}:s:s1`)).toEqual({ spent: '20000', held: '0' });
    expect(await redis.hgetall(`${prefix}:u:${tag}:s:s1`)).toEqual({
      calls: '1',
      inputTokens: '10',
      outputTokens: '5',
      cacheReadTokens: '0',
      cacheWriteTokens: '0',
      cost: '20000',
    });
    expect(await redis.hget(`${prefix}:b:${tag}:r:r1`, 'state')).toBe('settled');

    const ttl = async (suffix: string) => redis.pttl(`${prefix}:${suffix}`);
    const near = (ms: number) => expect.toSatisfy((v: number) => v > ms - 60_000 && v <= ms);
    expect(await ttl(`b:${tag}:s:s1`)).toEqual(near(30 * DAY));
    expect(await ttl(`b:${tag}:ud:alice:2026-03-15`)).toEqual(near(2 * DAY));
    expect(await ttl(`b:${tag}:tm:2026-03`)).toEqual(near(63 * DAY));
    expect(await ttl(`u:${tag}:s:s1`)).toEqual(near(30 * DAY));
    expect(await ttl(`u:${tag}:ud:alice:2026-03-15`)).toEqual(near(400 * DAY));
    expect(await ttl(`u:${tag}:um:alice:gpt-4.1-mini`)).toEqual(near(400 * DAY));
    expect(await ttl(`b:${tag}:r:r1`)).toEqual(near(3_600_000)); // kept only to dedupe retries
  });

  it('a reserve re-sent with the same reservation id (a retry after reconnect) holds once', async () => {
    const tenant = `ten-${randomUUID()}`;
    const meter = createRedisMeter({ redis, prefix, ids: () => 'same-id' });
    const scope = { tenant, user: 'alice', sessionId: 's1' };
    expect((await meter.reserve(scope, { sessionUsd: 1 }, 0.4)).ok).toBe(true);
    expect((await meter.reserve(scope, { sessionUsd: 1 }, 0.4)).ok).toBe(true);
    const held = await redis.hget(`${prefix}:b:{t:${tenant}}:s:s1`, 'held');
    expect(held).toBe('400000');
  });

  it('a lapsed hold is swept by the next reserve and marked expired', async () => {
    const tenant = `ten-${randomUUID()}`;
    let t = AT;
    let n = 0;
    const meter = createRedisMeter({
      redis,
      prefix,
      now: () => t,
      ids: () => `r${++n}`,
      holdTtlMs: 1_000,
    });
    const scope = { tenant, user: 'alice', sessionId: 's1' };
    await meter.reserve(scope, {}, 0.3);
    t += 1_001;
    await meter.reserve(scope, {}, 0.1);
    const base = `${prefix}:b:{t:${tenant}}`;
    expect(await redis.hget(`${base}:r:r1`, 'state')).toBe('expired');
    expect(await redis.zrange(`${base}:rz`, 0, -1)).toEqual(['r2']);
    expect(await redis.hget(`${base}:s:s1`, 'held')).toBe('100000');
  });

  it('fails closed within 1 s when Redis cannot be reached', async () => {
    const down = new Redis('redis://127.0.0.1:1', meterRedisOptions());
    down.on('error', () => {});
    try {
      const meter = createRedisMeter({ redis: down });
      const started = performance.now();
      const error = await meter
        .reserve({ tenant: 'a', user: 'b', sessionId: 'c' }, { sessionUsd: 1 }, 0.1)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(MeterUnavailableError.isInstance(error)).toBe(true);
      expect((error as MeterUnavailableError).keel).toMatchObject({
        code: 'UNAVAILABLE',
        retryable: true,
      });
    } finally {
      down.disconnect();
    }
  });
});
