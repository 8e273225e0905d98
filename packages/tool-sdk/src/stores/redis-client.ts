import { Redis } from 'ioredis';

/**
 * A Redis client for request paths: bounded command time, no offline queue, so a request fails
 * fast (and closed) while Redis is down instead of hanging or re-sending old commands.
 */
export function createRedisClient(url: string): Redis {
  return new Redis(url, {
    commandTimeout: 500,
    connectTimeout: 1_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(100 * attempt, 1_000),
    lazyConnect: false,
  });
}
