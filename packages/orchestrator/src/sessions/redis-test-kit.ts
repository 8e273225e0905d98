/** Test helpers for the Redis stores: a real Redis (REDIS_URL), a unique prefix, cleanup. */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createRedisClient, redisReady } from '@keel/tool-sdk';

export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface RedisTestBed {
  readonly redis: Redis;
  readonly prefix: string;
  /** Deletes every key under the prefix and disconnects. */
  cleanup(): Promise<void>;
}

export async function redisTestBed(): Promise<RedisTestBed> {
  const redis = createRedisClient(TEST_REDIS_URL);
  await redisReady(redis);
  const prefix = `keeltest-${randomUUID().slice(0, 8)}`;
  return {
    redis,
    prefix,
    async cleanup() {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1_000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
      redis.disconnect();
    },
  };
}
