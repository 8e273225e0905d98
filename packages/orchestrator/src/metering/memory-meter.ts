/**
 * The in-process meter (embedded default: no Redis, one process). Same semantics as the Redis
 * meter, checked by the same contract suite: reserve checks every given limit against spent +
 * held and holds on all three budgets at once; settle swaps the hold for the actual cost and
 * counts usage; a hold not settled within `holdTtlMs` (a crashed turn) is dropped.
 */
import { randomUUID } from 'node:crypto';
import type {
  BudgetKind,
  Meter,
  MeterScope,
  ModelUsage,
  Reservation,
  ReserveResult,
  UsageReport,
  UsageTotals,
} from './meter.js';
import {
  METER_DEFAULTS,
  addCounter,
  dayOf,
  emptyCounter,
  fromMicros,
  holdMicros,
  limitsInOrder,
  monthOf,
  toMicros,
  toTotals,
  tokenCount,
} from './meter-units.js';
import type { UsageCounter } from './meter-units.js';

/** Options of {@link createMemoryMeter}. */
export interface MemoryMeterOptions {
  now?: () => number;
  ids?: () => string;
  /** A hold not settled or released within this time is dropped (default 15 min). */
  holdTtlMs?: number;
  /** Session counters expire after this idle time (default 30 days). */
  sessionTtlMs?: number;
  /** Day and per-model usage is kept this long (default 400 days). */
  dayTtlMs?: number;
}

interface Budget {
  spent: number;
  held: number;
  expiresAt: number;
}

interface HoldRecord {
  readonly budgets: readonly [string, string, string];
  readonly amount: number;
  state: 'held' | 'settled' | 'released' | 'expired';
  /** While held: when the hold lapses; after: when the record is forgotten. */
  expiresAt: number;
}

interface TimedCounter {
  counter: UsageCounter;
  expiresAt: number;
}

interface UserUsage {
  sessions: Map<string, TimedCounter>;
  days: Map<string, TimedCounter>;
  models: Map<string, TimedCounter>;
}

const KINDS: readonly BudgetKind[] = ['session', 'user-day', 'tenant-month'];
/** How long a finished reservation is remembered, so a repeated settle or release is a no-op. */
const FINISHED_RECORD_MS = 3_600_000;
const MONTH_TTL_MS = 63 * 24 * 3_600_000;
const DAY_BUDGET_TTL_MS = 2 * 24 * 3_600_000;

/**
 * Create an in-memory meter.
 *
 * @example
 * ```ts
 * const meter = createMemoryMeter();
 * const scope = { tenant: 'acme', user: 'alice', sessionId: 's1' };
 * const r = await meter.reserve(scope, { sessionUsd: 1 }, 0.05);
 * if (r.ok) await meter.settle(r.reservation, {
 *   model: 'claude-sonnet-4-5', provider: 'anthropic', inputTokens: 900, outputTokens: 100,
 *   cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0.0042,
 * });
 * ```
 */
export function createMemoryMeter(options: MemoryMeterOptions = {}): Meter {
  const now = options.now ?? Date.now;
  const ids = options.ids ?? randomUUID;
  const holdTtlMs = options.holdTtlMs ?? METER_DEFAULTS.holdTtlMs;
  const sessionTtlMs = options.sessionTtlMs ?? METER_DEFAULTS.sessionTtlMs;
  const dayTtlMs = options.dayTtlMs ?? METER_DEFAULTS.dayTtlMs;

  const budgets = new Map<string, Budget>();
  const holds = new Map<string, HoldRecord>();
  const usageByUser = new Map<string, UserUsage>();

  const budgetKeys = (scope: MeterScope, at: number): [string, string, string] => [
    JSON.stringify(['s', scope.tenant, scope.sessionId]),
    JSON.stringify(['ud', scope.tenant, scope.user, dayOf(at)]),
    JSON.stringify(['tm', scope.tenant, monthOf(at)]),
  ];
  const budgetTtls = [sessionTtlMs, DAY_BUDGET_TTL_MS, MONTH_TTL_MS] as const;

  function budget(key: string, t: number, ttlMs?: number): Budget {
    let b = budgets.get(key);
    if (!b || b.expiresAt <= t) {
      b = { spent: 0, held: 0, expiresAt: t + (ttlMs ?? 0) };
      budgets.set(key, b);
    }
    if (ttlMs !== undefined) b.expiresAt = Math.max(b.expiresAt, t + ttlMs);
    return b;
  }

  function unhold(record: HoldRecord, t: number): void {
    for (const key of record.budgets) {
      const b = budgets.get(key);
      if (b && b.expiresAt > t) b.held = Math.max(0, b.held - record.amount);
    }
  }

  /** Drops lapsed holds, forgets old records and expired counters. */
  function sweep(t: number): void {
    for (const [id, record] of holds) {
      if (record.expiresAt > t) continue;
      if (record.state === 'held') {
        unhold(record, t);
        record.state = 'expired';
        record.expiresAt = t + FINISHED_RECORD_MS;
      } else {
        holds.delete(id);
      }
    }
    for (const [key, b] of budgets) if (b.expiresAt <= t) budgets.delete(key);
  }

  function userUsage(tenant: string, user: string): UserUsage {
    const key = JSON.stringify([tenant, user]);
    let u = usageByUser.get(key);
    if (!u) {
      u = { sessions: new Map(), days: new Map(), models: new Map() };
      usageByUser.set(key, u);
    }
    return u;
  }

  function count(
    map: Map<string, TimedCounter>,
    key: string,
    add: UsageCounter,
    until: number,
  ): void {
    let c = map.get(key);
    if (!c) {
      c = { counter: emptyCounter(), expiresAt: until };
      map.set(key, c);
    }
    addCounter(c.counter, add);
    c.expiresAt = Math.max(c.expiresAt, until);
  }

  return {
    async reserve(scope, limits, amountUsd): Promise<ReserveResult> {
      const amount = holdMicros(amountUsd);
      const t = now();
      sweep(t);
      const keys = budgetKeys(scope, t);
      const id = ids();
      // Same as the Redis meter: a reserve repeated with one id holds once.
      if (holds.has(id)) {
        return { ok: true, reservation: { id, scope, amountUsd: fromMicros(amount), at: t } };
      }
      const limitMicros = limitsInOrder(limits);
      for (let i = 0; i < 3; i++) {
        const limit = limitMicros[i];
        if (limit === undefined) continue;
        const b = budgets.get(keys[i]!);
        const used = b && b.expiresAt > t ? b.spent + b.held : 0;
        if (used + amount > limit) {
          return {
            ok: false,
            kind: KINDS[i]!,
            limitUsd: fromMicros(limit),
            usedUsd: fromMicros(used),
          };
        }
      }
      keys.forEach((key, i) => {
        budget(key, t, budgetTtls[i]).held += amount;
      });
      holds.set(id, { budgets: keys, amount, state: 'held', expiresAt: t + holdTtlMs });
      return { ok: true, reservation: { id, scope, amountUsd: fromMicros(amount), at: t } };
    },

    async settle(reservation: Reservation, usage: ModelUsage): Promise<void> {
      const t = now();
      sweep(t);
      const record = holds.get(reservation.id);
      if (record && (record.state === 'settled' || record.state === 'released')) return;
      const keys = budgetKeys(reservation.scope, reservation.at);
      if (record?.state === 'held') unhold(record, t);
      const cost = toMicros(usage.costUsd);
      keys.forEach((key, i) => {
        budget(key, t, budgetTtls[i]).spent += cost;
      });
      holds.set(reservation.id, {
        budgets: keys,
        amount: record?.amount ?? 0,
        state: 'settled',
        expiresAt: t + FINISHED_RECORD_MS,
      });

      const add: UsageCounter = {
        calls: 1,
        inputTokens: tokenCount(usage.inputTokens),
        outputTokens: tokenCount(usage.outputTokens),
        cacheReadTokens: tokenCount(usage.cacheReadTokens),
        cacheWriteTokens: tokenCount(usage.cacheWriteTokens),
        costMicros: cost,
      };
      const u = userUsage(reservation.scope.tenant, reservation.scope.user);
      count(u.sessions, reservation.scope.sessionId, add, t + sessionTtlMs);
      count(u.days, dayOf(reservation.at), add, t + dayTtlMs);
      count(u.models, usage.model, add, t + dayTtlMs);
    },

    async release(reservation: Reservation): Promise<void> {
      const t = now();
      sweep(t);
      const record = holds.get(reservation.id);
      if (!record || record.state !== 'held') return;
      unhold(record, t);
      record.state = 'released';
      record.expiresAt = t + FINISHED_RECORD_MS;
    },

    async usage(tenant: string, user: string): Promise<UsageReport> {
      const t = now();
      const u = usageByUser.get(JSON.stringify([tenant, user]));
      // fromEntries defines own properties, so an id like `__proto__` stays a plain key.
      const pick = (map: Map<string, TimedCounter> | undefined) => {
        const out: [string, UsageTotals][] = [];
        for (const [key, c] of map ?? []) {
          if (c.expiresAt > t) out.push([key, toTotals(c.counter)]);
          else map!.delete(key);
        }
        return Object.fromEntries(out);
      };
      const total = emptyCounter();
      for (const c of u?.days.values() ?? []) if (c.expiresAt > t) addCounter(total, c.counter);
      return {
        tenant,
        user,
        total: toTotals(total),
        bySession: pick(u?.sessions),
        byDay: pick(u?.days),
        byModel: pick(u?.models),
      };
    },

    async close(): Promise<void> {},
  };
}
