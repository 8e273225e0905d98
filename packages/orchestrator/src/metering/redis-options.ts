/**
 * ioredis options for the meter's request path (DESIGN.md section 7, RELIABILITY.md S23):
 * bounded command time and no offline queue, so a budget check fails fast and closed while
 * Redis is down instead of hanging or re-sending stale commands after a reconnect.
 */
import type { RedisOptions } from 'ioredis';

/** How long one meter command may wait for Redis (RELIABILITY.md default). */
export const METER_COMMAND_TIMEOUT_MS = 500;

/**
 * Client options for a meter's Redis connection.
 *
 * One retry per request is safe because every meter script is idempotent on its reservation
 * id (a reserve, settle or release that runs twice changes nothing the second time).
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * const redis = new Redis('redis://127.0.0.1:6379', meterRedisOptions());
 * ```
 */
export function meterRedisOptions(overrides: RedisOptions = {}): RedisOptions {
  return {
    commandTimeout: METER_COMMAND_TIMEOUT_MS,
    connectTimeout: 1_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt: number) => Math.min(100 * attempt, 1_000),
    ...overrides,
  };
}
