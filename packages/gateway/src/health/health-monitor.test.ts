import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedisClient, redisReady } from '@keel/tool-sdk';
import { serverSchema } from '../config/gateway-config.js';
import type { ServerConfig } from '../config/gateway-config.js';
import { createHealthMonitor } from './health-monitor.js';
import type { HealthMonitor, HealthMonitorOptions } from './health-monitor.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const A = 'http://10.0.0.1:7101/mcp';
const B = 'http://10.0.0.2:7101/mcp';
const C = 'http://10.0.0.3:7102/mcp';

function servers(): ServerConfig[] {
  return [
    serverSchema.parse({ id: 'orders', urls: [A, B] }),
    serverSchema.parse({ id: 'billing', urls: [C] }),
  ];
}

/** A probe whose answer per replica URL is set by the test; records every call. */
function scriptedProbe() {
  const down = new Set<string>();
  const calls: string[] = [];
  const signals: AbortSignal[] = [];
  let hang = false;
  const probe: HealthMonitorOptions['probe'] = (_server, replica, signal) => {
    calls.push(replica);
    signals.push(signal);
    if (hang) return new Promise(() => {});
    return down.has(replica) ? Promise.reject(new Error(`${replica} is down`)) : Promise.resolve();
  };
  return {
    probe,
    down,
    calls,
    signals,
    hang(value: boolean) {
      hang = value;
    },
  };
}

describe('health monitor (local, fake timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function monitor(extra: Partial<HealthMonitorOptions> = {}) {
    const script = scriptedProbe();
    const changes: Array<[string, boolean]> = [];
    const list = servers();
    const health = createHealthMonitor({
      registry: { list: () => list },
      probe: script.probe,
      replicaId: 'gw-1',
      intervalMs: 1_000,
      timeoutMs: 200,
      unhealthyAfter: 3,
      onChange: (replica, healthy) => changes.push([replica, healthy]),
      ...extra,
    });
    return { health, script, changes, list };
  }

  it('marks a replica unhealthy after unhealthyAfter consecutive failures and healthy on the first success', async () => {
    const { health, script, changes } = monitor();
    script.down.add(A);

    await health.checkNow();
    await health.checkNow();
    expect(health.isHealthy(A)).toBe(true);
    expect(health.snapshot().find((s) => s.replica === A)?.consecutiveFailures).toBe(2);

    await health.checkNow();
    expect(health.isHealthy(A)).toBe(false);
    expect(health.isHealthy(B)).toBe(true);
    await health.checkNow();
    expect(health.snapshot().find((s) => s.replica === A)?.consecutiveFailures).toBe(4);
    expect(changes).toEqual([[A, false]]);

    script.down.delete(A);
    await health.checkNow();
    expect(health.isHealthy(A)).toBe(true);
    expect(health.snapshot().find((s) => s.replica === A)?.consecutiveFailures).toBe(0);
    expect(changes).toEqual([
      [A, false],
      [A, true],
    ]);
  });

  it('a success in between resets the count', async () => {
    const { health, script } = monitor();
    for (let i = 0; i < 5; i++) {
      if (i === 2) script.down.delete(A);
      else script.down.add(A);
      await health.checkNow();
    }
    expect(health.isHealthy(A)).toBe(true);
    expect(health.snapshot().find((s) => s.replica === A)?.consecutiveFailures).toBe(2);
  });

  it('a probe that does not settle within timeoutMs fails and its signal is aborted', async () => {
    const { health, script } = monitor({ unhealthyAfter: 1 });
    script.hang(true);
    const check = health.checkNow();
    await vi.advanceTimersByTimeAsync(199);
    expect(script.signals.every((s) => !s.aborted)).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    await check;
    expect(script.signals).toHaveLength(3);
    expect(script.signals.every((s) => s.aborted)).toBe(true);
    expect(health.isHealthy(A)).toBe(false);
    expect(health.isHealthy(C)).toBe(false);
    expect(vi.getTimerCount()).toBe(0); // no timer left behind
  });

  it('probes every replica URL at start and then every intervalMs', async () => {
    const { health, script } = monitor();
    health.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(script.calls.sort()).toEqual([A, B, C].sort());
    await vi.advanceTimersByTimeAsync(2_000);
    expect(script.calls).toHaveLength(9);
    await health.close();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(script.calls).toHaveLength(9);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('close aborts probes in flight', async () => {
    const { health, script } = monitor();
    script.hang(true);
    health.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(script.signals).toHaveLength(3);
    await health.close();
    expect(script.signals.every((s) => s.aborted)).toBe(true);
    expect(health.snapshot()).toEqual([]); // the aborted round is not recorded
  });

  it('unknown replicas are healthy; removed servers drop out of the snapshot', async () => {
    const { health, script, list } = monitor({ unhealthyAfter: 1, now: () => 1_234 });
    expect(health.isHealthy('http://never.test/mcp')).toBe(true);
    script.down.add(C);
    await health.checkNow();
    expect(health.snapshot()).toEqual(
      expect.arrayContaining([
        {
          serverId: 'billing',
          replica: C,
          healthy: false,
          consecutiveFailures: 1,
          lastCheckedAt: 1_234,
        },
        {
          serverId: 'orders',
          replica: A,
          healthy: true,
          consecutiveFailures: 0,
          lastCheckedAt: 1_234,
        },
      ]),
    );
    list.pop(); // billing deregistered
    expect(health.snapshot().map((s) => s.replica)).toEqual([A, B]);
    await health.checkNow();
    expect(health.isHealthy(C)).toBe(true);
  });
});

describe('health monitor (Redis lease, two gateway replicas)', () => {
  const clients: Redis[] = [];
  const monitors: HealthMonitor[] = [];
  const prefixes: string[] = [];

  async function pair(extra: Partial<HealthMonitorOptions> = {}) {
    const prefix = `test:gw:${randomUUID()}`;
    prefixes.push(prefix);
    const list = servers();
    const script = scriptedProbe();
    const made = [];
    for (const replicaId of ['gw-a', 'gw-b']) {
      const redis = createRedisClient(REDIS_URL);
      clients.push(redis);
      await redisReady(redis);
      const calls: string[] = [];
      const changes: Array<[string, boolean]> = [];
      const health = createHealthMonitor({
        registry: { list: () => list },
        probe: (server, replica, signal) => {
          calls.push(replica);
          return script.probe(server, replica, signal);
        },
        redis,
        keyPrefix: prefix,
        replicaId,
        // Long enough that a lease taken by checkNow() never lapses within a test.
        intervalMs: 5_000,
        timeoutMs: 100,
        unhealthyAfter: 2,
        onChange: (replica, healthy) => changes.push([replica, healthy]),
        ...extra,
      });
      monitors.push(health);
      made.push({ health, calls, changes, redis });
    }
    return { a: made[0]!, b: made[1]!, script, prefix };
  }

  afterEach(async () => {
    await Promise.all(monitors.splice(0).map((m) => m.close()));
  });

  afterAll(async () => {
    const redis = clients[0];
    if (redis) {
      for (const prefix of prefixes) {
        await redis.del(`{${prefix}:health}:lease`, `{${prefix}:health}:state`);
      }
    }
    for (const client of clients) client.disconnect();
  });

  it('only the lease holder probes, and both replicas see the same health', async () => {
    const { a, b, script, prefix } = await pair();
    script.down.add(B);
    for (let i = 0; i < 3; i++) {
      await a.health.checkNow();
      await b.health.checkNow();
    }
    expect(a.health.isProbing()).toBe(true);
    expect(b.health.isProbing()).toBe(false);
    expect(a.calls).toHaveLength(9); // 3 rounds × 3 replica URLs
    expect(b.calls).toHaveLength(0);
    expect(await a.redis.get(`{${prefix}:health}:lease`)).toBe('gw-a');

    expect(a.health.isHealthy(B)).toBe(false);
    expect(b.health.isHealthy(B)).toBe(false);
    expect(b.health.isHealthy(A)).toBe(true);
    expect(b.health.snapshot()).toEqual(a.health.snapshot());
    expect(b.changes).toEqual([[B, false]]);
  });

  it('the other replica learns a change by pub/sub, without a tick of its own', async () => {
    const { a, b, script, prefix } = await pair({ unhealthyAfter: 1 });
    await a.health.checkNow();
    b.health.start(); // subscribes; its own first tick finds the lease taken, next in 5 s
    await vi.waitFor(() => expect(b.health.snapshot()).toHaveLength(3), { timeout: 2_000 });
    await vi.waitFor(
      async () => {
        const [, subscribers] = (await a.redis.pubsub('NUMSUB', `${prefix}:health:changed`)) as [
          string,
          number,
        ];
        expect(subscribers).toBe(1);
      },
      { timeout: 2_000 },
    );
    script.down.add(C);
    await a.health.checkNow();
    // Well before B's next tick: only the published message can have told it.
    await vi.waitFor(() => expect(b.health.isHealthy(C)).toBe(false), { timeout: 1_000 });
    expect(b.changes).toEqual([[C, false]]);
    expect(b.calls).toHaveLength(0);
  });

  it('the lease moves to the other replica when the holder closes, keeping the failure counts', async () => {
    const { a, b, script } = await pair({ unhealthyAfter: 3 });
    script.down.add(A);
    await a.health.checkNow();
    await a.health.checkNow();
    await b.health.checkNow();
    expect(b.health.snapshot().find((s) => s.replica === A)?.consecutiveFailures).toBe(2);

    await a.health.close();
    await b.health.checkNow();
    expect(b.health.isProbing()).toBe(true);
    expect(b.calls).toHaveLength(3);
    // The third failure in a row, counted across the hand-over.
    expect(b.health.isHealthy(A)).toBe(false);
    expect(b.health.snapshot().find((s) => s.replica === A)?.consecutiveFailures).toBe(3);
  });

  it('with real timers, two started monitors still probe once per interval between them', async () => {
    const { a, b } = await pair({ intervalMs: 200 });
    a.health.start();
    b.health.start();
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const rounds = (a.calls.length + b.calls.length) / 3;
    // One holder (whichever won), about one round per 200 ms interval.
    expect(Math.min(a.calls.length, b.calls.length)).toBe(0);
    expect(rounds).toBeGreaterThanOrEqual(4);
    expect(rounds).toBeLessThanOrEqual(7);
  });

  it('a holder that lost its lease mid-round writes nothing (fenced write)', async () => {
    const { a, b, script, prefix } = await pair({ unhealthyAfter: 1 });
    await a.health.checkNow();
    script.down.add(C);
    // A's lease is taken over (as after a long pause of A).
    await a.redis.set(`{${prefix}:health}:lease`, 'gw-b', 'PX', 5_000);
    await a.health.checkNow();
    expect(a.health.isProbing()).toBe(false);
    expect(a.calls).toHaveLength(3); // it could not renew, so it did not probe again
    await b.health.checkNow();
    expect(b.health.isProbing()).toBe(true);
    expect(b.health.isHealthy(C)).toBe(false);

    // Now the fence itself: B loses the lease while its probes run.
    script.down.delete(C);
    const slow = createHealthMonitor({
      registry: { list: () => servers() },
      probe: async () => {
        await b.redis.set(`{${prefix}:health}:lease`, 'gw-c', 'PX', 5_000);
      },
      redis: b.redis,
      keyPrefix: prefix,
      replicaId: 'gw-b',
      intervalMs: 200,
      timeoutMs: 100,
      unhealthyAfter: 1,
    });
    monitors.push(slow);
    await slow.checkNow(); // renews gw-b's lease, probes, loses it, must not write
    const stored = await b.redis.hget(`{${prefix}:health}:state`, C);
    expect(JSON.parse(stored!)).toMatchObject({ healthy: false });
  });
});
