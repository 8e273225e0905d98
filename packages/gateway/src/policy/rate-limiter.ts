/**
 * Rate limits per tenant, user, server or tool, counted in Redis so every gateway replica
 * shares one count. Each count is one atomic Lua step of rate-limiter-flexible's
 * `RateLimiterRedis` (fixed window from a counter's first call).
 */
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { GatewayError } from '../errors/gateway-error.js';
import { counterKey } from './rate-limit-rule.js';
import type { RateLimitDecision, RateLimitRule, RateLimiter } from './rate-limit-rule.js';

export { createLocalRateLimiter } from './local-rate-limiter.js';
export type { LocalRateLimiterOptions } from './local-rate-limiter.js';
export { counterKey } from './rate-limit-rule.js';
export type {
  RateLimitDecision,
  RateLimitRule,
  RateLimitStoreDown,
  RateLimitSubject,
  RateLimiter,
} from './rate-limit-rule.js';

/** Options of {@link createRateLimiter}. */
export interface RedisRateLimiterOptions {
  /**
   * A client that fails fast while Redis is down: `commandTimeout` ≤ 500, `enableOfflineQueue:
   * false`, `maxRetriesPerRequest: 0` (`createRedisClient` of `@keel/tool-sdk` makes one).
   */
  redis: Redis;
  keyPrefix?: string;
  /** Longest a check waits for Redis before it counts as down, whatever the client does. */
  timeoutMs?: number;
}

/**
 * rate-limiter-flexible's own script, with the window in milliseconds (`PX`) rather than
 * whole seconds, so windows like 1.5 s are kept exactly. ARGV[4] is the limiter's duration in
 * seconds; every limiter on a client registers this same script under one command name.
 */
const INCR_PX_SCRIPT = `local ms = math.floor(tonumber(ARGV[4]) * 1000 + 0.5)
redis.call('set', KEYS[1], 0, 'PX', ms, 'NX')
local consumed = redis.call('incrby', KEYS[1], ARGV[1])
local ttl = redis.call('pttl', KEYS[1])
if ttl == -1 then
  redis.call('pexpire', KEYS[1], ms)
  ttl = ms
end
return {consumed, ttl}`;

/** How long a caller is told to wait when the store is down and limits fail closed. */
const STORE_DOWN_RETRY_AFTER_MS = 1_000;

class StoreTimeout extends Error {}

/**
 * Create the Redis-backed limiter.
 *
 * Rules are counted in order with one round trip each. The first rule over its limit refuses
 * the call; later rules are not counted, and the points the call took from earlier rules are
 * given back (`reward`), so a user refused by their own limit does not eat the tenant's.
 * Between the count and the refund another replica may see the higher count: refusals can
 * run a little early under contention, never late.
 *
 * Windows shorter than 1 s are kept as 1 s (rate-limiter-flexible counts whole seconds below
 * that). When Redis cannot be reached within `timeoutMs` (default 500 ms), `storeDown:
 * 'closed'` refuses with a retryable `UNAVAILABLE` and `'open'` allows the call.
 *
 * @example
 * ```ts
 * import { createRedisClient } from '@keel/tool-sdk';
 * const limiter = createRateLimiter({ redis: createRedisClient('redis://127.0.0.1:6379') });
 * const decision = await limiter.check(
 *   [{ per: 'user', limit: 100, windowMs: 60_000 }],
 *   { user: 'alice', serverId: 'orders', exposedTool: 'orders__list' },
 *   'closed',
 * );
 * if (!decision.allowed) console.log(`retry in ${decision.retryAfterMs} ms`);
 * ```
 */
export function createRateLimiter(options: RedisRateLimiterOptions): RateLimiter {
  const prefix = options.keyPrefix ?? 'keel:rl';
  const timeoutMs = options.timeoutMs ?? 500;
  const limiters = new Map<string, RateLimiterRedis>();

  function limiterFor(rule: RateLimitRule): RateLimiterRedis {
    const id = `${rule.per}:${rule.limit}:${rule.windowMs}`;
    let limiter = limiters.get(id);
    if (!limiter) {
      limiter = new RateLimiterRedis({
        storeClient: options.redis,
        keyPrefix: '',
        points: rule.limit,
        duration: Math.max(rule.windowMs, 1_000) / 1_000,
        customIncrTtlLuaScript: INCR_PX_SCRIPT,
        // Fail at once when the client is not connected, instead of queueing.
        rejectIfRedisNotReady: true,
      });
      limiters.set(id, limiter);
    }
    return limiter;
  }

  return {
    async check(rules, subject, storeDown): Promise<RateLimitDecision> {
      if (rules.length === 0) return { allowed: true };
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StoreTimeout('rate-limit store timed out')), timeoutMs);
      });
      timedOut.catch(() => undefined);
      const counted: { limiter: RateLimiterRedis; key: string }[] = [];
      try {
        for (const rule of rules) {
          const limiter = limiterFor(rule);
          const key = counterKey(prefix, rule, subject);
          const consumed = limiter.consume(key, 1);
          consumed.catch(() => undefined);
          const outcome = await Promise.race([
            consumed.then(
              () => undefined,
              (error: unknown) => {
                if (error instanceof RateLimiterRes) return error;
                throw error;
              },
            ),
            timedOut,
          ]);
          if (outcome) {
            await Promise.race([
              Promise.allSettled(counted.map((c) => c.limiter.reward(c.key, 1))),
              timedOut.catch(() => undefined),
            ]);
            return {
              allowed: false,
              retryAfterMs: Math.max(1, Math.ceil(outcome.msBeforeNext)),
              rule,
            };
          }
          counted.push({ limiter, key });
        }
        return { allowed: true };
      } catch (error) {
        if (storeDown === 'open') return { allowed: true };
        throw new GatewayError('UNAVAILABLE', 'Rate limits cannot be checked right now', {
          retryable: true,
          retryAfterMs: STORE_DOWN_RETRY_AFTER_MS,
          delivery: 'no',
          cause: error,
        });
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
