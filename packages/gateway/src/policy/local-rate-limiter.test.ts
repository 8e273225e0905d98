import { describe, expect, it } from 'vitest';
import { createLocalRateLimiter } from './local-rate-limiter.js';
import type { RateLimitRule, RateLimitSubject } from './rate-limit-rule.js';

const alice: RateLimitSubject = {
  tenant: 'acme',
  user: 'alice',
  serverId: 'orders',
  exposedTool: 'orders__list',
};

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('local rate limiter', () => {
  it('allows `limit` calls per fixed window, then refuses with the time left', async () => {
    const c = clock();
    const limiter = createLocalRateLimiter({ now: c.now });
    const rule: RateLimitRule = { per: 'user', limit: 3, windowMs: 1_000 };
    for (let i = 0; i < 3; i++) {
      expect(await limiter.check([rule], alice, 'closed')).toEqual({ allowed: true });
    }
    c.advance(400);
    expect(await limiter.check([rule], alice, 'closed')).toEqual({
      allowed: false,
      retryAfterMs: 600,
      rule,
    });
    c.advance(600);
    expect(await limiter.check([rule], alice, 'closed')).toEqual({ allowed: true });
  });

  it('keeps one counter per user, tenant, server or exposed tool', async () => {
    const limiter = createLocalRateLimiter({ now: clock().now });
    const one = (per: RateLimitRule['per']): RateLimitRule => ({ per, limit: 1, windowMs: 60_000 });
    const bob = { ...alice, user: 'bob' };
    expect((await limiter.check([one('user')], alice, 'open')).allowed).toBe(true);
    expect((await limiter.check([one('user')], bob, 'open')).allowed).toBe(true);
    expect((await limiter.check([one('user')], alice, 'open')).allowed).toBe(false);

    // Same tenant: one budget for alice and bob.
    expect((await limiter.check([one('tenant')], alice, 'open')).allowed).toBe(true);
    expect((await limiter.check([one('tenant')], bob, 'open')).allowed).toBe(false);
    // Without a tenant a user is their own tenant.
    const { tenant: _t, ...carol } = { ...alice, user: 'carol' };
    expect((await limiter.check([one('tenant')], carol, 'open')).allowed).toBe(true);

    expect((await limiter.check([one('tool')], alice, 'open')).allowed).toBe(true);
    expect((await limiter.check([one('tool')], bob, 'open')).allowed).toBe(false);
    const otherTool = { ...bob, exposedTool: 'orders__refund' };
    expect((await limiter.check([one('tool')], otherTool, 'open')).allowed).toBe(true);
    expect((await limiter.check([one('server')], otherTool, 'open')).allowed).toBe(true);
    expect((await limiter.check([one('server')], alice, 'open')).allowed).toBe(false);
  });

  it('a refused call counts against no rule', async () => {
    const limiter = createLocalRateLimiter({ now: clock().now });
    const tenant: RateLimitRule = { per: 'tenant', limit: 2, windowMs: 60_000 };
    const user: RateLimitRule = { per: 'user', limit: 1, windowMs: 60_000 };
    expect((await limiter.check([tenant, user], alice, 'closed')).allowed).toBe(true);
    const refused = await limiter.check([tenant, user], alice, 'closed');
    expect(refused).toMatchObject({ allowed: false, rule: user });
    // The tenant rule still has its second call: the refusal did not use it.
    const bob = { ...alice, user: 'bob' };
    expect((await limiter.check([tenant], bob, 'closed')).allowed).toBe(true);
    expect((await limiter.check([tenant], bob, 'closed')).allowed).toBe(false);
  });

  it('no rules: allowed', async () => {
    const limiter = createLocalRateLimiter();
    expect(await limiter.check([], alice, 'closed')).toEqual({ allowed: true });
  });
});
