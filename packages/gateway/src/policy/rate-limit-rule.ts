/**
 * The rate-limiter contract shared by the Redis and the in-memory limiter: rules, the subject
 * of a call, the decision, and what one counter is keyed by.
 */
import type { Policies } from '../config/gateway-config.js';

/** One rule from the configuration: `limit` calls per `windowMs`, counted `per` something. */
export type RateLimitRule = Policies['rateLimits'][number];

/** What the store does when it cannot be reached: refuse calls, or let them through. */
export type RateLimitStoreDown = Policies['rateLimitStoreDown'];

/** Who makes the call and what it is for. */
export interface RateLimitSubject {
  tenant?: string;
  user: string;
  serverId: string;
  /** The exposed (prefixed) tool name. */
  exposedTool: string;
}

/** Allowed, or refused by the first rule over its limit. */
export type RateLimitDecision =
  { allowed: true } | { allowed: false; retryAfterMs: number; rule: RateLimitRule };

/** Checks (and counts) one call against a list of rules. */
export interface RateLimiter {
  /**
   * All rules must pass. Rules are counted in order; the first one over its limit refuses the
   * call, the rules after it are not touched, and the ones before it are given their point
   * back, so a refused call costs nothing.
   */
  check(
    rules: readonly RateLimitRule[],
    subject: RateLimitSubject,
    storeDown: RateLimitStoreDown,
  ): Promise<RateLimitDecision>;
}

/**
 * The counter a rule keeps for a subject. Counters are identified by what they count
 * (`per` and its value) and by the rule's numbers, so the same rule configured on several
 * servers or tools counts one budget (a `defaults.policies` user rule is one budget per user
 * across the gateway), while a rule with other numbers keeps its own counter.
 *
 * The value sits in a Redis Cluster hash tag (`{t:<tenant>}` like the budget counters of
 * DESIGN.md section 7, `{u:<user>}`, `{s:<server>}`, `{x:<tool>}`), URI-encoded so ids with
 * `{`, `}` or `:` cannot change the tag or collide with another key.
 *
 * @example
 * ```ts
 * counterKey('keel:rl', { per: 'user', limit: 100, windowMs: 60_000 }, {
 *   user: 'alice', serverId: 'orders', exposedTool: 'orders__list',
 * }); // 'keel:rl:{u:alice}:user:100:60000'
 * ```
 */
export function counterKey(prefix: string, rule: RateLimitRule, subject: RateLimitSubject): string {
  return `${prefix}:{${counterTag(rule, subject)}}:${rule.per}:${rule.limit}:${rule.windowMs}`;
}

function counterTag(rule: RateLimitRule, subject: RateLimitSubject): string {
  switch (rule.per) {
    case 'tenant':
      // Without a tenant the user is their own tenant.
      return subject.tenant !== undefined
        ? `t:${encodeURIComponent(subject.tenant)}`
        : `u:${encodeURIComponent(subject.user)}`;
    case 'user':
      return `u:${encodeURIComponent(subject.user)}`;
    case 'server':
      return `s:${encodeURIComponent(subject.serverId)}`;
    case 'tool':
      return `x:${encodeURIComponent(subject.exposedTool)}`;
  }
}
