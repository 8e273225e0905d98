import { describe, expect, it } from 'vitest';
import { dayOf, fromMicros, holdMicros, limitsInOrder, monthOf, toMicros } from './meter-units.js';

describe('meter units', () => {
  it('counts money in whole micro-dollars; holds round up, costs to the nearest', () => {
    expect(toMicros(0.08)).toBe(80_000);
    expect(toMicros(0.0000004)).toBe(0);
    expect(toMicros(Number.NaN)).toBe(0);
    expect(toMicros(-1)).toBe(0);
    expect(holdMicros(0.1)).toBe(100_000); // not 100,001 from float noise
    expect(holdMicros(0.0000001)).toBe(1); // a tiny hold is still a hold
    expect(holdMicros(0)).toBe(0);
    expect(fromMicros(1_234_567)).toBe(1.234567);
  });

  it('refuses a negative or non-finite reservation instead of holding nothing', () => {
    expect(() => holdMicros(-0.01)).toThrow(RangeError);
    expect(() => holdMicros(Number.NaN)).toThrow(RangeError);
    expect(() => holdMicros(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });

  it('names the UTC day and month', () => {
    expect(dayOf(Date.UTC(2026, 0, 31, 23, 59, 59, 999))).toBe('2026-01-31');
    expect(dayOf(Date.UTC(2026, 1, 1))).toBe('2026-02-01');
    expect(monthOf(Date.UTC(2026, 11, 31, 23, 59))).toBe('2026-12');
    expect(monthOf(Date.UTC(2027, 0, 1))).toBe('2027-01');
  });

  it('orders limits session, user-day, tenant-month; absent stays absent', () => {
    expect(limitsInOrder({ tenantMonthUsd: 100, sessionUsd: 0.5 })).toEqual([
      500_000,
      undefined,
      100_000_000,
    ]);
    expect(limitsInOrder({})).toEqual([undefined, undefined, undefined]);
  });
});
