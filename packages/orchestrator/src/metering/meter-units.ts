/**
 * Shared arithmetic of both meters: money as integer micro-dollars (no float drift when many
 * small costs add up), and the UTC day and month a reservation counts in.
 */
import type { BudgetLimits, UsageTotals } from './meter.js';

const MICROS_PER_USD = 1_000_000;

/** USD to micro-dollars, rounded to the nearest micro-dollar. */
export function toMicros(usd: number): number {
  return Number.isFinite(usd) && usd > 0 ? Math.round(usd * MICROS_PER_USD) : 0;
}

/**
 * A hold rounds up, so a reservation never covers less than it was asked for. A negative or
 * non-finite amount is a caller's bug that would otherwise reserve nothing, so it throws.
 */
export function holdMicros(usd: number): number {
  if (!Number.isFinite(usd) || usd < 0) {
    throw new RangeError(`a reservation must be a finite amount >= 0 USD, got ${usd}`);
  }
  // The small epsilon keeps float noise (0.1 * 1e6 = 100000.00000000001) from adding a micro.
  return Math.max(0, Math.ceil(usd * MICROS_PER_USD - 1e-6));
}

export function fromMicros(micros: number): number {
  return micros / MICROS_PER_USD;
}

/** `YYYY-MM-DD` in UTC. */
export function dayOf(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 10);
}

/** `YYYY-MM` in UTC. */
export function monthOf(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 7);
}

/** The limits in the order they are checked, in micro-dollars (absent: unlimited). */
export function limitsInOrder(
  limits: BudgetLimits,
): readonly [session?: number, userDay?: number, tenantMonth?: number] {
  const m = (usd: number | undefined) =>
    usd === undefined ? undefined : Math.round(Math.max(0, usd) * MICROS_PER_USD);
  return [m(limits.sessionUsd), m(limits.userDayUsd), m(limits.tenantMonthUsd)];
}

/** Mutable usage totals with cost in micro-dollars. */
export interface UsageCounter {
  calls: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costMicros: number;
}

export function emptyCounter(): UsageCounter {
  return {
    calls: 0,
    inputTokens: 0,
    outputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    costMicros: 0,
  };
}

export function addCounter(into: UsageCounter, from: UsageCounter): void {
  into.calls += from.calls;
  into.inputTokens += from.inputTokens;
  into.outputTokens += from.outputTokens;
  into.cacheReadTokens += from.cacheReadTokens;
  into.cacheWriteTokens += from.cacheWriteTokens;
  into.costMicros += from.costMicros;
}

export function toTotals(counter: UsageCounter): UsageTotals {
  return {
    calls: counter.calls,
    inputTokens: counter.inputTokens,
    outputTokens: counter.outputTokens,
    cacheReadTokens: counter.cacheReadTokens,
    cacheWriteTokens: counter.cacheWriteTokens,
    costUsd: fromMicros(counter.costMicros),
  };
}

/** A non-negative integer token count (providers may omit or garble one). */
export function tokenCount(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.round(n) : 0;
}

/** Defaults shared by both meters. */
export const METER_DEFAULTS = {
  /** A crashed turn's hold is dropped after this long (longer than any one model call). */
  holdTtlMs: 15 * 60_000,
  /** Session counters follow the session idle TTL (DESIGN.md section 7). */
  sessionTtlMs: 30 * 24 * 3_600_000,
  /** Day counters (usage by day and by model) are kept this long. */
  dayTtlMs: 400 * 24 * 3_600_000,
} as const;
