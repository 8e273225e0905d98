import { describe, expect, it } from 'vitest';
import { checkStep, checkToolCalls, newLimitsState } from './turn-limits.js';

const limits = { maxSteps: 2, maxToolCalls: 5, maxTokensPerTurn: 100 };

describe('turn limits', () => {
  it('stops at maxSteps and maxTokensPerTurn', () => {
    const state = newLimitsState();
    expect(checkStep(limits, state)).toBeUndefined();
    state.steps = 2;
    expect(checkStep(limits, state)?.details).toMatchObject({ limit: 'maxSteps' });
    state.steps = 0;
    state.outputTokens = 100;
    expect(checkStep(limits, state)?.code).toBe('LIMIT_EXCEEDED');
  });

  it('counts tool calls against maxToolCalls', () => {
    const state = newLimitsState();
    expect(
      checkToolCalls(limits, state, [
        { toolName: 'a', input: 1 },
        { toolName: 'b', input: 2 },
      ]),
    ).toBeUndefined();
    expect(state.toolCalls).toBe(2);
    const err = checkToolCalls(
      limits,
      state,
      [1, 2, 3, 4].map((i) => ({ toolName: 'c', input: i })),
    );
    expect(err?.details).toMatchObject({ limit: 'maxToolCalls' });
    expect(state.toolCalls).toBe(2);
  });

  it('S31 loop breaker: the same tool with the same arguments (key order ignored) a fourth time', () => {
    const state = newLimitsState();
    const big = { ...limits, maxToolCalls: 100 };
    for (let i = 0; i < 3; i += 1) {
      expect(
        checkToolCalls(big, state, [{ toolName: 't', input: { a: 1, b: [1, { c: 2 }] } }]),
      ).toBeUndefined();
    }
    expect(checkToolCalls(big, state, [{ toolName: 't', input: { a: 2 } }])).toBeUndefined();
    const err = checkToolCalls(big, state, [{ toolName: 't', input: { b: [1, { c: 2 }], a: 1 } }]);
    expect(err).toMatchObject({
      code: 'LIMIT_EXCEEDED',
      retryable: false,
      details: { limit: 'loopBreaker' },
    });
  });
});
