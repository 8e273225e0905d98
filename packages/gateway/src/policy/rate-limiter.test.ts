import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, redisReady } from '@keel/tool-sdk';
import { freePort, startRedisServer } from '@keel/tool-sdk/test';
import { GatewayError } from '../errors/gateway-error.js';
import { counterKey, createRateLimiter } from './rate-limiter.js';
import type { RateLimitRule, RateLimitSubject } from './rate-limiter.js';

const REDIS_URL = 'redis://127.0.0.1:6379';

const alice: RateLimitSubject = {
  tenant: 'acme',
  user: 'alice',
  serverId: 'orders',
  exposedTool: 'orders__list',
};

async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found.sort();
}

describe('redis rate limiter (real Redis at 127.0.0.1:6379)', () => {
  let redis: Redis;
  let other: Redis;
  let prefix: string;

  beforeAll(async () => {
    redis = createRedisClient(REDIS_URL);
    other = createRedisClient(REDIS_URL);
    await Promise.all([redisReady(redis), redisReady(other)]);
  });

  afterEach(async () => {
    const keys = await keysUnder(redis, prefix);
    if (keys.length > 0) await redis.del(...keys);
  });

  afterAll(async () => {
    await Promise.all([redis.quit(), other.quit()]);
  });

  function freshPrefix(): string {
    prefix = `keel-test:rl:${randomUUID()}`;
    return prefix;
  }

  it('allows `limit` calls in a window, then refuses with the time until it ends', async () => {
    const limiter = createRateLimiter({ redis, keyPrefix: freshPrefix() });
    const rule: RateLimitRule = { per: 'user', limit: 3, windowMs: 60_000 };
    for (let i = 0; i < 3; i++) {
      expect(await limiter.check([rule], alice, 'closed')).toEqual({ allowed: true });
    }
    const refused = await limiter.check([rule], alice, 'closed');
    expect(refused).toMatchObject({ allowed: false, rule });
    const { retryAfterMs } = refused as { retryAfterMs: number };
    expect(retryAfterMs).toBeGreaterThan(59_000);
    expect(retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it('S30 1,000 checks from two replicas (two connections) against 100/s: exactly 100 allowed', async () => {
    freshPrefix();
    const replicaA = createRateLimiter({ redis, keyPrefix: prefix });
    const replicaB = createRateLimiter({ redis: other, keyPrefix: prefix });
    const rule: RateLimitRule = { per: 'tool', limit: 100, windowMs: 1_000 };
    const started = Date.now();
    const decisions = await Promise.all(
      Array.from({ length: 1_000 }, (_, i) =>
        (i % 2 === 0 ? replicaA : replicaB).check(
          [rule],
          { ...alice, user: `user-${i}` },
          'closed',
        ),
      ),
    );
    // All inside one window, or the count below would mean nothing.
    expect(Date.now() - started).toBeLessThan(1_000);
    const allowed = decisions.filter((d) => d.allowed);
    expect(allowed).toHaveLength(100);
    for (const decision of decisions) {
      if (!decision.allowed) {
        expect(decision.retryAfterMs).toBeGreaterThan(0);
        expect(decision.retryAfterMs).toBeLessThanOrEqual(1_000);
        expect(decision.rule).toEqual(rule);
      }
    }
  });

  it('keys counters by what they count, inside a Redis Cluster hash tag', async () => {
    const limiter = createRateLimiter({ redis, keyPrefix: freshPrefix() });
    const rules: RateLimitRule[] = [
      { per: 'tenant', limit: 5, windowMs: 60_000 },
      { per: 'user', limit: 5, windowMs: 60_000 },
      { per: 'server', limit: 5, windowMs: 60_000 },
      { per: 'tool', limit: 5, windowMs: 60_000 },
    ];
    await limiter.check(rules, alice, 'closed');
    const { tenant: _tenant, ...noTenant } = { ...alice, user: 'b{o}b:1' };
    await limiter.check([rules[0]!], noTenant, 'closed');
    expect(await keysUnder(redis, prefix)).toEqual(
      [
        `${prefix}:{t:acme}:tenant:5:60000`,
        `${prefix}:{u:alice}:user:5:60000`,
        `${prefix}:{s:orders}:server:5:60000`,
        `${prefix}:{x:orders__list}:tool:5:60000`,
        // Without a tenant the user is their own tenant; braces and colons are encoded.
        `${prefix}:{u:b%7Bo%7Db%3A1}:tenant:5:60000`,
      ].sort(),
    );
    expect(counterKey(prefix, rules[1]!, alice)).toBe(`${prefix}:{u:alice}:user:5:60000`);
  });

  it('when a rule refuses, later rules are not counted and earlier ones get their point back', async () => {
    const limiter = createRateLimiter({ redis, keyPrefix: freshPrefix() });
    const tenant: RateLimitRule = { per: 'tenant', limit: 10, windowMs: 60_000 };
    const user: RateLimitRule = { per: 'user', limit: 1, windowMs: 60_000 };
    const tool: RateLimitRule = { per: 'tool', limit: 10, windowMs: 60_000 };
    expect((await limiter.check([tenant, user, tool], alice, 'closed')).allowed).toBe(true);
    const refused = await limiter.check([tenant, user, tool], alice, 'closed');
    expect(refused).toMatchObject({ allowed: false, rule: user });
    expect(await redis.get(counterKey(prefix, tenant, alice))).toBe('1');
    expect(await redis.get(counterKey(prefix, tool, alice))).toBe('1');
  });

  it('keeps windows in milliseconds (1.5 s stays 1.5 s) and starts over when a window ends', async () => {
    const limiter = createRateLimiter({ redis, keyPrefix: freshPrefix() });
    const rule: RateLimitRule = { per: 'user', limit: 1, windowMs: 1_500 };
    await limiter.check([rule], alice, 'closed');
    const key = counterKey(prefix, rule, alice);
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(1_000);
    expect(ttl).toBeLessThanOrEqual(1_500);
    const refused = await limiter.check([rule], alice, 'closed');
    expect(refused.allowed).toBe(false);
    expect((refused as { retryAfterMs: number }).retryAfterMs).toBeLessThanOrEqual(1_500);
    // End the window now rather than sleeping through it.
    await redis.pexpire(key, 1);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await limiter.check([rule], alice, 'closed')).toEqual({ allowed: true });
  });

  it('no rules: allowed without touching Redis', async () => {
    const offline = createRedisClient('redis://127.0.0.1:1');
    const limiter = createRateLimiter({ redis: offline, keyPrefix: freshPrefix() });
    expect(await limiter.check([], alice, 'closed')).toEqual({ allowed: true });
    offline.disconnect();
  });
});

function stopped(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const started = performance.now();
  try {
    const value = await fn();
    return { ms: performance.now() - started, value };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

describe('redis rate limiter when Redis fails (own redis-server)', () => {
  let port: number;
  let dir: string;
  let server: ChildProcess | undefined;
  let client: Redis;
  const rule: RateLimitRule = { per: 'user', limit: 1_000, windowMs: 60_000 };

  beforeAll(async () => {
    port = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'keel-rl-redis-'));
    server = await startRedisServer(port, dir);
    client = createRedisClient(`redis://127.0.0.1:${port}`);
    await redisReady(client);
  }, 20_000);

  afterAll(async () => {
    client.disconnect();
    if (server && server.exitCode === null && server.signalCode === null) {
      server.kill('SIGCONT');
      server.kill('SIGKILL');
      await stopped(server);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('S23 answers within 600 ms while Redis hangs or is gone: UNAVAILABLE when closed, allowed when open; recovers after a restart', async () => {
    const keyPrefix = `keel-test:rl:${randomUUID()}`;
    const limiter = createRateLimiter({ redis: client, keyPrefix });
    expect(await limiter.check([rule], alice, 'closed')).toEqual({ allowed: true });

    // Hung (SIGSTOP): the connection is up but nothing answers.
    server!.kill('SIGSTOP');
    const hungClosed = await timed(() => limiter.check([rule], alice, 'closed'));
    expect(hungClosed.ms).toBeLessThan(600);
    expect(GatewayError.isInstance(hungClosed.error)).toBe(true);
    expect(hungClosed.error).toMatchObject({
      code: 'UNAVAILABLE',
      retryable: true,
      retryAfterMs: 1_000,
      delivery: 'no',
    });
    const hungOpen = await timed(() => limiter.check([rule], alice, 'open'));
    expect(hungOpen.ms).toBeLessThan(600);
    expect(hungOpen.value).toEqual({ allowed: true });
    server!.kill('SIGCONT');

    // Gone (kill -9): the connection drops.
    server!.kill('SIGKILL');
    await stopped(server!);
    for (let i = 0; i < 5; i++) {
      const closed = await timed(() => limiter.check([rule], alice, 'closed'));
      expect(closed.ms).toBeLessThan(600);
      expect(closed.error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
      const open = await timed(() => limiter.check([rule], alice, 'open'));
      expect(open.ms).toBeLessThan(600);
      expect(open.value).toEqual({ allowed: true });
    }

    // Back: the client reconnects by itself and limits are counted again.
    server = await startRedisServer(port, dir);
    const restarted = performance.now();
    let decision: unknown;
    while (performance.now() - restarted < 6_000) {
      decision = await limiter.check([rule], alice, 'closed').catch((error: unknown) => error);
      if (!GatewayError.isInstance(decision)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(decision).toEqual({ allowed: true });
    // S23: recovery ≤ 2 s after Redis returns (×3 margin on these machines).
    expect(performance.now() - restarted).toBeLessThan(6_000);
    // A fresh server (no persistence): the count started over with this call.
    expect(await client.get(counterKey(keyPrefix, rule, alice))).toBe('1');
  }, 30_000);
});
