import { describe, expect, it } from 'vitest';
import { costOf, reservationFor } from './cost.js';

const sonnet = {
  inputPerMTok: 3,
  outputPerMTok: 15,
  cacheReadPerMTok: 0.3,
  cacheWritePerMTok: 3.75,
};
const none = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 };

describe('costOf', () => {
  it('prices input and output per million tokens', () => {
    expect(costOf(sonnet, { ...none, inputTokens: 1_000_000 })).toBeCloseTo(3, 12);
    expect(costOf(sonnet, { ...none, outputTokens: 1_000_000 })).toBeCloseTo(15, 12);
    expect(costOf(sonnet, { ...none, inputTokens: 1_000, outputTokens: 200 })).toBeCloseTo(
      0.006,
      12,
    );
  });

  it('prices cache reads and writes at their own prices', () => {
    expect(costOf(sonnet, { ...none, cacheReadTokens: 1_000_000 })).toBeCloseTo(0.3, 12);
    expect(costOf(sonnet, { ...none, cacheWriteTokens: 1_000_000 })).toBeCloseTo(3.75, 12);
  });

  it('prices cache tokens at the input price when the model states no cache price', () => {
    const plain = { inputPerMTok: 2, outputPerMTok: 8 };
    expect(
      costOf(plain, { ...none, cacheReadTokens: 500_000, cacheWriteTokens: 500_000 }),
    ).toBeCloseTo(2, 12);
  });

  it('sums all four parts', () => {
    const usage = {
      inputTokens: 10_000,
      outputTokens: 2_000,
      cacheReadTokens: 50_000,
      cacheWriteTokens: 4_000,
    };
    expect(costOf(sonnet, usage)).toBeCloseTo(0.03 + 0.03 + 0.015 + 0.015, 12);
  });

  it('counts missing, negative or NaN token counts as 0', () => {
    expect(costOf(sonnet, { ...none, inputTokens: -5, outputTokens: Number.NaN })).toBe(0);
  });
});

describe('reservationFor', () => {
  it('is estimated input x input price + max_tokens x output price', () => {
    expect(reservationFor(sonnet, 10_000, 1_000)).toBeCloseTo(0.045, 12);
    expect(reservationFor({ inputPerMTok: 0.15, outputPerMTok: 0.6 }, 0, 4_096)).toBeCloseTo(
      0.0024576,
      12,
    );
  });

  it('is never below the actual cost of a call that stays within its estimate', () => {
    const actual = costOf(sonnet, { ...none, inputTokens: 9_000, outputTokens: 800 });
    expect(reservationFor(sonnet, 9_000, 1_000)).toBeGreaterThanOrEqual(actual);
  });
});
