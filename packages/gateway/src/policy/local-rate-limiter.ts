/**
 * The rate limiter in process memory: fixed windows that start at a counter's first call.
 * For a single gateway process without Redis (development), and for the inbound API-key
 * request limits, which each replica keeps for itself.
 */
import { counterKey } from './rate-limit-rule.js';
import type { RateLimiter, RateLimitDecision } from './rate-limit-rule.js';

/** Options of {@link createLocalRateLimiter}. */
export interface LocalRateLimiterOptions {
  now?: () => number;
  /** How often expired counters are dropped. */
  sweepEveryMs?: number;
}

interface Counter {
  resetAt: number;
  count: number;
}

/**
 * Create an in-memory limiter. Checking is synchronous underneath, so all rules are checked
 * before any is counted: a refused call counts against no rule.
 *
 * @example
 * ```ts
 * const limiter = createLocalRateLimiter({ now: Date.now });
 * await limiter.check(
 *   [{ per: 'user', limit: 10, windowMs: 1_000 }],
 *   { user: 'alice', serverId: 'orders', exposedTool: 'orders__list' },
 *   'open',
 * ); // { allowed: true }
 * ```
 */
export function createLocalRateLimiter(options: LocalRateLimiterOptions = {}): RateLimiter {
  const now = options.now ?? Date.now;
  const sweepEveryMs = options.sweepEveryMs ?? 60_000;
  const counters = new Map<string, Counter>();
  let nextSweepAt = now() + sweepEveryMs;

  function sweep(at: number): void {
    if (at < nextSweepAt) return;
    nextSweepAt = at + sweepEveryMs;
    for (const [key, counter] of counters) if (counter.resetAt <= at) counters.delete(key);
  }

  return {
    async check(rules, subject): Promise<RateLimitDecision> {
      const at = now();
      sweep(at);
      const live: Counter[] = [];
      for (const rule of rules) {
        const key = counterKey('local', rule, subject);
        let counter = counters.get(key);
        if (!counter || counter.resetAt <= at) {
          counter = { resetAt: at + rule.windowMs, count: 0 };
          counters.set(key, counter);
        }
        if (counter.count >= rule.limit) {
          return { allowed: false, retryAfterMs: Math.max(1, counter.resetAt - at), rule };
        }
        live.push(counter);
      }
      for (const counter of live) counter.count++;
      return { allowed: true };
    },
  };
}
