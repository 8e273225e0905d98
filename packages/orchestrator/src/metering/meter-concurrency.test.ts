/**
 * S29 (RELIABILITY.md): many concurrent turns against one budget, through several replicas'
 * connections to the real Redis. Spend stays within one reservation of the budget and no
 * hold is lost.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { Meter, MeterScope } from './meter.js';
import { createRedisMeter } from './redis-meter.js';
import { meterRedisOptions } from './redis-options.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `keel-test:meter-s29:${randomUUID()}`;
const clients = Array.from({ length: 5 }, () => new Redis(REDIS_URL, meterRedisOptions()));

afterAll(async () => {
  const keys = await clients[0]!.keys(`${prefix}:*`);
  if (keys.length > 0) await clients[0]!.del(...keys);
  clients.forEach((c) => c.disconnect());
});

const BUDGET = { sessionUsd: 1 };
const RESERVE_USD = 0.1;
const ACTUAL_USD = 0.08;

async function ready(): Promise<void> {
  await Promise.all(
    clients.map((c) =>
      c.status === 'ready' ? undefined : new Promise((resolve) => c.once('ready', resolve)),
    ),
  );
}

function setup() {
  const tenant = `t-${randomUUID()}`;
  const scope: MeterScope = { tenant, user: 'alice', sessionId: `s-${randomUUID()}` };
  // One meter per connection, as five orchestrator replicas would have.
  const meters: Meter[] = clients.map((redis) => createRedisMeter({ redis, prefix }));
  const sessionKey = `${prefix}:b:{t:${encodeURIComponent(tenant)}}:s:${encodeURIComponent(scope.sessionId)}`;
  const readBudget = async () => {
    const [spent, held] = await clients[0]!.hmget(sessionKey, 'spent', 'held');
    return { spent: Number(spent ?? 0), held: Number(held ?? 0) };
  };
  return { scope, meters, readBudget };
}

describe('S29 concurrent turns against one session budget (real Redis, 5 connections)', () => {
  it('S29 50 turns, each calling the model until refused: spend <= budget + one reservation, 0 model calls after exhaustion, held ends at 0', async () => {
    await ready();
    const { scope, meters, readBudget } = setup();
    let modelCalls = 0;
    const refusals: string[] = [];
    await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const meter = meters[i % meters.length]!;
        // A turn takes steps until its reservation is refused (bounded for safety).
        for (let step = 0; step < 100; step++) {
          const r = await meter.reserve(scope, BUDGET, RESERVE_USD);
          if (!r.ok) {
            refusals.push(r.kind);
            return;
          }
          modelCalls += 1; // the "model call" runs only with a granted reservation
          // Staggered call lengths, so settles interleave with other turns' reserves.
          await new Promise((resolve) => setTimeout(resolve, ((i + step) % 7) * 3));
          await meter.settle(r.reservation, {
            model: 'm',
            provider: 'anthropic',
            inputTokens: 100,
            outputTokens: 10,
            cacheReadTokens: 0,
            cacheWriteTokens: 0,
            costUsd: ACTUAL_USD,
          });
        }
      }),
    );

    expect(refusals).toHaveLength(50);
    expect(new Set(refusals)).toEqual(new Set(['session']));
    const { spent, held } = await readBudget();
    expect(held).toBe(0); // no hold lost or leaked
    expect(spent).toBe(modelCalls * 80_000); // micro-dollars: every settle counted exactly once
    expect(spent).toBeLessThanOrEqual(1_100_000); // budget + one reservation
    // Turns stop only when refused, so the last refusal saw no other hold: the budget ran
    // out at $0.96 (12 calls), the most $0.08 calls that leave room for no $0.10 reservation.
    expect(modelCalls).toBe(12);
    expect(await meters[0]!.reserve(scope, BUDGET, RESERVE_USD)).toMatchObject({
      ok: false,
      kind: 'session',
      usedUsd: 0.96,
    });
    const report = await meters[1]!.usage(scope.tenant, scope.user);
    expect(report.bySession[scope.sessionId]?.calls).toBe(modelCalls);
  });

  it('S29 50 turns reserving before any settle: exactly 10 holds granted on a $1.00 budget', async () => {
    await ready();
    const { scope, meters, readBudget } = setup();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        meters[i % meters.length]!.reserve(scope, BUDGET, RESERVE_USD),
      ),
    );
    const granted = results.filter((r) => r.ok);
    expect(granted).toHaveLength(10);
    expect((await readBudget()).held).toBe(1_000_000);
    await Promise.all(
      granted.map((r, i) => (r.ok ? meters[i % meters.length]!.release(r.reservation) : undefined)),
    );
    expect(await readBudget()).toEqual({ spent: 0, held: 0 });
  });
});
