/**
 * Usage, cost and budgets (DESIGN.md section 9). Reserve-then-settle in one atomic step
 * (one Lua script in Redis; all counters of a tenant share the hash tag `{t:<tenant>}`).
 */

/** Whose spend a model call counts against. */
export interface MeterScope {
  readonly tenant: string;
  readonly user: string;
  readonly sessionId: string;
}

/** Budget limits in USD; an absent limit is unlimited. */
export interface BudgetLimits {
  readonly sessionUsd?: number;
  readonly userDayUsd?: number;
  readonly tenantMonthUsd?: number;
}

export type BudgetKind = 'session' | 'user-day' | 'tenant-month';

export type ReserveResult =
  | { readonly ok: true; readonly reservation: Reservation }
  | {
      readonly ok: false;
      readonly kind: BudgetKind;
      readonly limitUsd: number;
      /** Spent plus held reservations at the time of the refusal. */
      readonly usedUsd: number;
    };

/** A held amount; settle it exactly once. */
export interface Reservation {
  readonly id: string;
  readonly scope: MeterScope;
  readonly amountUsd: number;
  /** Epoch ms of the reservation (fixes which day and month it counts in). */
  readonly at: number;
}

/** What one model call used. */
export interface ModelUsage {
  readonly model: string;
  readonly provider: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheReadTokens: number;
  readonly cacheWriteTokens: number;
  readonly costUsd: number;
}

export interface UsageTotals {
  readonly calls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheReadTokens: number;
  readonly cacheWriteTokens: number;
  readonly costUsd: number;
}

export interface UsageReport {
  readonly tenant: string;
  readonly user: string;
  readonly total: UsageTotals;
  readonly bySession: Readonly<Record<string, UsageTotals>>;
  /** `YYYY-MM-DD` (UTC). */
  readonly byDay: Readonly<Record<string, UsageTotals>>;
  readonly byModel: Readonly<Record<string, UsageTotals>>;
}

export interface Meter {
  /** Fails closed: throws a KeelError-carrying error (UNAVAILABLE) when the store is unreachable. */
  reserve(scope: MeterScope, limits: BudgetLimits, amountUsd: number): Promise<ReserveResult>;
  /** Replaces the reservation with the actual cost and records usage (per session, user, tenant, day, model). */
  settle(reservation: Reservation, usage: ModelUsage): Promise<void>;
  /** Drops a reservation without usage (the call never happened). */
  release(reservation: Reservation): Promise<void>;
  usage(tenant: string, user: string): Promise<UsageReport>;
  close(): Promise<void>;
}
