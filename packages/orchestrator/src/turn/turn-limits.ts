/**
 * Per-turn limits (DESIGN.md section 9): steps, tool calls, output tokens, and a loop breaker
 * for the same tool called with the same arguments again and again (S31).
 */
import type { KeelError } from '@keel/tool-sdk/contract';
import type { AgentLimits } from '../config/agent-config.js';

/** How many identical calls (same tool, same arguments) a turn may make. */
export const DEFAULT_MAX_IDENTICAL_CALLS = 3;

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export interface TurnLimitsState {
  steps: number;
  toolCalls: number;
  outputTokens: number;
  readonly identical: Record<string, number>;
}

export function newLimitsState(): TurnLimitsState {
  return { steps: 0, toolCalls: 0, outputTokens: 0, identical: {} };
}

/** A limit breach; the turn adds its correlation id. */
export type LimitError = Omit<KeelError, 'correlationId'>;

function limitError(message: string, details: Record<string, unknown>): LimitError {
  return { code: 'LIMIT_EXCEEDED', message, retryable: false, details };
}

/** Checked before a model call: is there a step left? */
export function checkStep(limits: AgentLimits, state: TurnLimitsState): LimitError | undefined {
  if (state.steps >= limits.maxSteps) {
    return limitError(`The turn reached its limit of ${limits.maxSteps} model steps.`, {
      limit: 'maxSteps',
      value: limits.maxSteps,
    });
  }
  if (state.outputTokens >= limits.maxTokensPerTurn) {
    return limitError(`The turn reached its limit of ${limits.maxTokensPerTurn} output tokens.`, {
      limit: 'maxTokensPerTurn',
      value: limits.maxTokensPerTurn,
    });
  }
  return undefined;
}

/**
 * Checked before dispatching a step's tool calls; counts them when allowed. Returns the error
 * of the first call that breaks a limit.
 */
export function checkToolCalls(
  limits: AgentLimits,
  state: TurnLimitsState,
  calls: ReadonlyArray<{ toolName: string; input: unknown }>,
  maxIdentical = DEFAULT_MAX_IDENTICAL_CALLS,
): LimitError | undefined {
  if (state.toolCalls + calls.length > limits.maxToolCalls) {
    return limitError(`The turn reached its limit of ${limits.maxToolCalls} tool calls.`, {
      limit: 'maxToolCalls',
      value: limits.maxToolCalls,
    });
  }
  const counts = { ...state.identical };
  for (const call of calls) {
    const key = `${call.toolName}:${stableJson(call.input)}`;
    counts[key] = (counts[key] ?? 0) + 1;
    if (counts[key] > maxIdentical) {
      return limitError(
        `The model called ${call.toolName} with the same arguments more than ${maxIdentical} times in one turn (loop breaker).`,
        { limit: 'loopBreaker', tool: call.toolName, value: maxIdentical },
      );
    }
  }
  Object.assign(state.identical, counts);
  state.toolCalls += calls.length;
  return undefined;
}
