/**
 * The one contract both meters pass (DESIGN.md section 7: "Both stores pass one shared
 * contract test suite"). `makeMeter` builds a fresh meter on the given clock; each test uses
 * its own tenant so a shared Redis needs no flush between tests.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { BudgetKind, BudgetLimits, Meter, MeterScope, ModelUsage } from './meter.js';

export interface MeterContractOptions {
  readonly now: () => number;
  readonly holdTtlMs: number;
}

const HOLD_TTL_MS = 60_000;
const START = Date.UTC(2026, 0, 31, 23, 0, 0); // one hour before a day and a month end

function usageOf(costUsd: number, extra: Partial<ModelUsage> = {}): ModelUsage {
  return {
    model: 'claude-sonnet-4-5',
    provider: 'anthropic',
    inputTokens: 1_000,
    outputTokens: 100,
    cacheReadTokens: 10,
    cacheWriteTokens: 1,
    costUsd,
    ...extra,
  };
}

/** Registers the contract tests for one meter implementation. */
export function meterContract(
  name: string,
  makeMeter: (options: MeterContractOptions) => Meter | Promise<Meter>,
): void {
  describe(`Meter contract: ${name}`, () => {
    async function setup() {
      let t = START;
      const clock = {
        now: () => t,
        advance: (ms: number) => {
          t += ms;
        },
        set: (ms: number) => {
          t = ms;
        },
      };
      const meter = await makeMeter({ now: clock.now, holdTtlMs: HOLD_TTL_MS });
      const tenant = `tenant-${randomUUID()}`;
      const scope = (user = 'alice', sessionId = 's1'): MeterScope => ({ tenant, user, sessionId });
      /** Spent + held on one budget, read through a refusal against a zero limit. */
      async function used(kind: BudgetKind, s: MeterScope = scope()): Promise<number> {
        const limits: BudgetLimits =
          kind === 'session'
            ? { sessionUsd: 0 }
            : kind === 'user-day'
              ? { userDayUsd: 0 }
              : { tenantMonthUsd: 0 };
        const r = await meter.reserve(s, limits, 1);
        if (r.ok) throw new Error('a zero limit accepted a reservation');
        expect(r.kind).toBe(kind);
        return r.usedUsd;
      }
      return { meter, clock, tenant, scope, used };
    }

    async function reserveOk(meter: Meter, s: MeterScope, limits: BudgetLimits, usd: number) {
      const r = await meter.reserve(s, limits, usd);
      if (!r.ok) throw new Error(`refused by ${r.kind}: used ${r.usedUsd} of ${r.limitUsd}`);
      return r.reservation;
    }

    it('reserves under the limit and holds the amount on all three budgets', async () => {
      const { meter, scope, used, clock } = await setup();
      const r = await meter.reserve(
        scope(),
        { sessionUsd: 1, userDayUsd: 1, tenantMonthUsd: 1 },
        0.25,
      );
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.reservation).toMatchObject({ scope: scope(), amountUsd: 0.25, at: clock.now() });
      expect(typeof r.reservation.id).toBe('string');
      expect(await used('session')).toBe(0.25);
      expect(await used('user-day')).toBe(0.25);
      expect(await used('tenant-month')).toBe(0.25);
    });

    it('accepts a reservation that exactly reaches the limit and refuses one micro-dollar more', async () => {
      const { meter, scope } = await setup();
      await reserveOk(meter, scope(), { sessionUsd: 1 }, 0.6);
      expect((await meter.reserve(scope(), { sessionUsd: 1 }, 0.400001)).ok).toBe(false);
      expect((await meter.reserve(scope(), { sessionUsd: 1 }, 0.4)).ok).toBe(true);
    });

    it('refuses over the session budget, naming it, with the limit and what is used', async () => {
      const { meter, scope } = await setup();
      await reserveOk(meter, scope(), { sessionUsd: 1 }, 0.7);
      const r = await meter.reserve(
        scope(),
        { sessionUsd: 1, userDayUsd: 100, tenantMonthUsd: 100 },
        0.5,
      );
      expect(r).toEqual({ ok: false, kind: 'session', limitUsd: 1, usedUsd: 0.7 });
      // Another session of the same user is not held back by this one.
      expect((await meter.reserve(scope('alice', 's2'), { sessionUsd: 1 }, 0.5)).ok).toBe(true);
    });

    it('refuses over the user-day budget across the user sessions', async () => {
      const { meter, scope } = await setup();
      const limits = { sessionUsd: 10, userDayUsd: 1, tenantMonthUsd: 100 };
      await reserveOk(meter, scope('alice', 's1'), limits, 0.6);
      const r = await meter.reserve(scope('alice', 's2'), limits, 0.6);
      expect(r).toEqual({ ok: false, kind: 'user-day', limitUsd: 1, usedUsd: 0.6 });
      expect((await meter.reserve(scope('bob', 's3'), limits, 0.6)).ok).toBe(true);
    });

    it('refuses over the tenant-month budget across users', async () => {
      const { meter, scope } = await setup();
      const limits = { sessionUsd: 10, userDayUsd: 10, tenantMonthUsd: 1 };
      await reserveOk(meter, scope('alice', 's1'), limits, 0.6);
      const r = await meter.reserve(scope('bob', 's2'), limits, 0.6);
      expect(r).toEqual({ ok: false, kind: 'tenant-month', limitUsd: 1, usedUsd: 0.6 });
    });

    it('a refused reservation holds nothing on any budget', async () => {
      const { meter, scope, used } = await setup();
      await reserveOk(meter, scope(), {}, 0.3);
      const r = await meter.reserve(scope(), { sessionUsd: 10, tenantMonthUsd: 0.5 }, 0.3);
      expect(r.ok).toBe(false);
      expect(await used('session')).toBe(0.3);
      expect(await used('user-day')).toBe(0.3);
    });

    it('settle moves the hold to spent at the actual cost', async () => {
      const { meter, scope, used } = await setup();
      const r = await reserveOk(meter, scope(), { sessionUsd: 1 }, 0.5);
      await meter.settle(r, usageOf(0.08));
      expect(await used('session')).toBe(0.08);
      expect(await used('user-day')).toBe(0.08);
      expect(await used('tenant-month')).toBe(0.08);
      expect((await meter.reserve(scope(), { sessionUsd: 1 }, 0.92)).ok).toBe(true);
      expect((await meter.reserve(scope(), { sessionUsd: 1 }, 0.01)).ok).toBe(false);
    });

    it('settle counts a cost above the reservation in full', async () => {
      const { meter, scope, used } = await setup();
      const r = await reserveOk(meter, scope(), {}, 0.1);
      await meter.settle(r, usageOf(0.3));
      expect(await used('session')).toBe(0.3);
    });

    it('a second settle or a release after settle changes nothing', async () => {
      const { meter, scope, used, tenant } = await setup();
      const r = await reserveOk(meter, scope(), {}, 0.5);
      await meter.settle(r, usageOf(0.2));
      await meter.settle(r, usageOf(0.2));
      await meter.release(r);
      expect(await used('session')).toBe(0.2);
      expect((await meter.usage(tenant, 'alice')).total.calls).toBe(1);
    });

    it('release frees the hold and records no usage', async () => {
      const { meter, scope, used, tenant } = await setup();
      const r = await reserveOk(meter, scope(), { sessionUsd: 1 }, 0.6);
      expect((await meter.reserve(scope(), { sessionUsd: 1 }, 0.6)).ok).toBe(false);
      await meter.release(r);
      await meter.release(r);
      expect(await used('session')).toBe(0);
      expect(await used('tenant-month')).toBe(0);
      expect((await meter.reserve(scope(), { sessionUsd: 1 }, 0.6)).ok).toBe(true);
      expect((await meter.usage(tenant, 'alice')).total.calls).toBe(0);
    });

    it('a hold neither settled nor released lapses after the hold TTL (crashed turn)', async () => {
      const { meter, scope, used, clock } = await setup();
      const r = await reserveOk(meter, scope(), { sessionUsd: 1 }, 0.9);
      clock.advance(HOLD_TTL_MS - 1);
      expect((await meter.reserve(scope(), { sessionUsd: 1 }, 0.2)).ok).toBe(false);
      clock.advance(2);
      expect((await meter.reserve(scope(), { sessionUsd: 1 }, 0.2)).ok).toBe(true);
      // A late settle still counts the actual cost, but takes off no hold twice.
      await meter.settle(r, usageOf(0.05));
      expect(await used('session')).toBeCloseTo(0.25, 9);
    });

    it('only the lapsed hold is dropped; a younger hold stays held', async () => {
      const { meter, scope, used, clock } = await setup();
      await reserveOk(meter, scope(), {}, 0.5);
      clock.advance(HOLD_TTL_MS / 2);
      const young = await reserveOk(meter, scope(), {}, 0.3);
      clock.advance(HOLD_TTL_MS / 2 + 1);
      expect(await used('session')).toBeCloseTo(0.3, 9);
      expect(await used('tenant-month')).toBeCloseTo(0.3, 9);
      await meter.release(young);
      expect(await used('session')).toBe(0);
    });

    it('counts money in whole micro-dollars: 1,000 settles of $0.001 spend exactly $1', async () => {
      const { meter, scope } = await setup();
      for (let i = 0; i < 1_000; i++) {
        const r = await reserveOk(meter, scope(), { sessionUsd: 1 }, 0.001);
        await meter.settle(r, usageOf(0.001));
      }
      const r = await meter.reserve(scope(), { sessionUsd: 1 }, 0.000001);
      expect(r).toEqual({ ok: false, kind: 'session', limitUsd: 1, usedUsd: 1 });
    });

    it('a negative or non-finite reservation throws and holds nothing', async () => {
      const { meter, scope, used } = await setup();
      await expect(meter.reserve(scope(), {}, -1)).rejects.toThrow(RangeError);
      await expect(meter.reserve(scope(), {}, Number.NaN)).rejects.toThrow(RangeError);
      expect(await used('session')).toBe(0);
    });

    it('absent limits are unlimited', async () => {
      const { meter, scope } = await setup();
      for (let i = 0; i < 3; i++) {
        const r = await reserveOk(meter, scope(), {}, 1_000_000);
        await meter.settle(r, usageOf(1_000_000));
      }
      expect((await meter.reserve(scope(), {}, 1_000_000)).ok).toBe(true);
    });

    it('the user-day budget starts again at UTC midnight and the tenant-month at the 1st', async () => {
      const { meter, scope, used, clock } = await setup();
      const limits = { userDayUsd: 1, tenantMonthUsd: 1.5 };
      await meter.settle(await reserveOk(meter, scope(), limits, 0.9), usageOf(0.9));
      expect((await meter.reserve(scope(), limits, 0.2)).ok).toBe(false);

      clock.set(Date.UTC(2026, 1, 1, 0, 0, 0)); // the next day and the next month
      expect(await used('user-day')).toBe(0);
      expect(await used('tenant-month')).toBe(0);
      expect(await used('session')).toBe(0.9); // a session budget does not reset
      await meter.settle(await reserveOk(meter, scope(), limits, 0.9), usageOf(0.9));

      clock.set(Date.UTC(2026, 1, 2, 12, 0, 0)); // the next day, same month
      expect(await used('user-day')).toBe(0);
      expect(await used('tenant-month')).toBe(0.9);
      const r = await meter.reserve(scope('bob', 's9'), limits, 0.7);
      expect(r).toEqual({ ok: false, kind: 'tenant-month', limitUsd: 1.5, usedUsd: 0.9 });
    });

    it('a reservation counts in the day it was made, even when settled after midnight', async () => {
      const { meter, scope, used, clock, tenant } = await setup();
      clock.set(Date.UTC(2026, 0, 31, 23, 59, 59));
      const r = await reserveOk(meter, scope(), {}, 0.5);
      clock.set(Date.UTC(2026, 1, 1, 0, 0, 1));
      await meter.settle(r, usageOf(0.4));
      expect(await used('user-day')).toBe(0);
      const report = await meter.usage(tenant, 'alice');
      expect(Object.keys(report.byDay)).toEqual(['2026-01-31']);
    });

    it('reports usage per session, day and model for one user, summed', async () => {
      const { meter, scope, clock, tenant } = await setup();
      const call = async (s: MeterScope, u: ModelUsage) =>
        meter.settle(await reserveOk(meter, s, {}, 1), u);
      await call(scope('alice', 's1'), usageOf(0.01, { model: 'm-a' }));
      await call(scope('alice', 's1'), usageOf(0.02, { model: 'm-b', inputTokens: 5 }));
      clock.set(Date.UTC(2026, 1, 1, 9, 0, 0));
      await call(scope('alice', 's2'), usageOf(0.04, { model: 'm-a', outputTokens: 7 }));
      await call(scope('bob', 's3'), usageOf(5, { model: 'm-c' }));

      const report = await meter.usage(tenant, 'alice');
      expect(report.tenant).toBe(tenant);
      expect(report.user).toBe('alice');
      expect(report.total).toEqual({
        calls: 3,
        inputTokens: 2_005,
        outputTokens: 207,
        cacheReadTokens: 30,
        cacheWriteTokens: 3,
        costUsd: 0.07,
      });
      expect(report.bySession).toEqual({
        s1: {
          calls: 2,
          inputTokens: 1_005,
          outputTokens: 200,
          cacheReadTokens: 20,
          cacheWriteTokens: 2,
          costUsd: 0.03,
        },
        s2: {
          calls: 1,
          inputTokens: 1_000,
          outputTokens: 7,
          cacheReadTokens: 10,
          cacheWriteTokens: 1,
          costUsd: 0.04,
        },
      });
      expect(report.byDay['2026-01-31']).toMatchObject({ calls: 2, costUsd: 0.03 });
      expect(report.byDay['2026-02-01']).toMatchObject({ calls: 1, costUsd: 0.04 });
      expect(Object.keys(report.byDay).sort()).toEqual(['2026-01-31', '2026-02-01']);
      expect(report.byModel['m-a']).toMatchObject({ calls: 2, costUsd: 0.05, outputTokens: 107 });
      expect(report.byModel['m-b']).toMatchObject({ calls: 1, costUsd: 0.02, inputTokens: 5 });
      expect(report.byModel['m-c']).toBeUndefined();

      const empty = await meter.usage(tenant, 'nobody');
      expect(empty.total.calls).toBe(0);
      expect(empty.bySession).toEqual({});
    });

    it('keeps tenants, users and odd ids apart (no key collisions)', async () => {
      const { meter, tenant } = await setup();
      const a: MeterScope = { tenant, user: 'a:b', sessionId: '__proto__' };
      const b: MeterScope = { tenant, user: 'a', sessionId: 'x' };
      const other: MeterScope = { tenant: `${tenant}}{`, user: 'a:b', sessionId: '__proto__' };
      await meter.settle(await reserveOk(meter, a, {}, 1), usageOf(0.3, { model: 'b:c' }));
      await meter.settle(await reserveOk(meter, b, {}, 1), usageOf(0.1, { model: 'c' }));
      expect((await meter.reserve(other, { sessionUsd: 0.5 }, 0.5)).ok).toBe(true);
      const report = await meter.usage(tenant, 'a:b');
      expect(report.total.costUsd).toBe(0.3);
      expect(Object.keys(report.bySession)).toEqual(['__proto__']);
      expect(Object.keys(report.byModel)).toEqual(['b:c']);
      expect((await meter.usage(tenant, 'a')).total.costUsd).toBe(0.1);
    });
  });
}
