import { describe, expect, it } from 'vitest';
import { retryDelayMs } from './retry-backoff.js';

const policy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1_000 };

describe('retryDelayMs', () => {
  it('draws in [0, baseDelayMs * 2^(retry-1)) and caps the ceiling at maxDelayMs', () => {
    const ceilings = [1, 2, 3, 4, 5, 6].map((retry) =>
      retryDelayMs(policy, retry, undefined, () => 0.999_999),
    );
    expect(ceilings).toEqual([99, 199, 399, 799, 999, 999]);
    expect([1, 2, 3].map((retry) => retryDelayMs(policy, retry, undefined, () => 0))).toEqual([
      0, 0, 0,
    ]);
    expect(retryDelayMs(policy, 3, undefined, () => 0.5)).toBe(200);
  });

  it('never waits less than retryAfterMs', () => {
    expect(retryDelayMs(policy, 1, 2_500, () => 0.999)).toBe(2_500);
    expect(retryDelayMs(policy, 4, 10, () => 0.5)).toBe(400);
  });
});
