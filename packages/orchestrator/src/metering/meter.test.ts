import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { createMemoryMeter } from './memory-meter.js';
import { meterContract } from './meter.contract.js';
import { createRedisMeter } from './redis-meter.js';
import { meterRedisOptions } from './redis-options.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `keel-test:meter:${randomUUID()}`;
const redis = new Redis(REDIS_URL, meterRedisOptions({ enableOfflineQueue: true }));

afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  redis.disconnect();
});

meterContract('memory', ({ now, holdTtlMs }) => createMemoryMeter({ now, holdTtlMs }));
meterContract('redis', ({ now, holdTtlMs }) => createRedisMeter({ redis, prefix, now, holdTtlMs }));
