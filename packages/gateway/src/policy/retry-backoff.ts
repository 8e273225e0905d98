/**
 * The wait before a retry: exponential backoff with full jitter, never shorter than what the
 * failed attempt asked for (`retryAfterMs`).
 */
import type { Policies } from '../config/gateway-config.js';

/** The retry part of a server's {@link Policies}. */
export type RetryPolicy = Policies['retry'];

/**
 * Milliseconds to wait before retry number `retry` (1 for the first retry).
 *
 * Full jitter: a uniform draw in `[0, min(maxDelayMs, baseDelayMs * 2^(retry-1)))`, so that
 * callers who failed together do not come back together. A `retryAfterMs` the error carries
 * is a floor: the upstream (or an open breaker) said when it is worth asking again.
 *
 * @example
 * ```ts
 * const policy = { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 2_000 };
 * retryDelayMs(policy, 2, undefined, Math.random); // somewhere in [0, 200)
 * retryDelayMs(policy, 1, 1_500, Math.random); // 1_500: the floor wins over [0, 100)
 * ```
 */
export function retryDelayMs(
  policy: RetryPolicy,
  retry: number,
  retryAfterMs: number | undefined,
  random: () => number,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1));
  const jittered = Math.floor(random() * ceiling);
  return Math.max(jittered, retryAfterMs ?? 0);
}
