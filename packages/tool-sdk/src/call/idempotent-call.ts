import { canonicalJson } from '../json/canonical-json.js';
import { createHash } from 'node:crypto';
import type { CallToolResult } from '../mcp/protocol.js';
import { keelError } from '../errors/tool-sdk-error.js';
import type { IdempotencyStore } from '../stores/idempotency-store.js';
import type { CallOutcome } from './execute-call.js';
import { errorResult } from './tool-result.js';

/** Saved results live this long. */
export const IDEMPOTENCY_RESULT_TTL_MS = 24 * 60 * 60 * 1000;

/** The parts of an idempotency scope: `(aud, sub, tool, idk)`. */
export interface IdempotencyScope {
  aud: string;
  sub: string;
  tool: string;
  idk: string;
}

/**
 * Run a call at most once per scope: a finished call's result is returned again; a call still
 * running gives CONFLICT (retryable); the same key with other arguments gives INVALID_INPUT.
 * Failures a retry may fix (retryable ones, bad input) free the key; the store being down
 * fails closed (UNAVAILABLE).
 */
export async function runIdempotent(
  store: IdempotencyStore,
  scope: IdempotencyScope,
  args: unknown,
  leaseMs: number,
  correlationId: string,
  run: () => Promise<CallOutcome>,
): Promise<CallOutcome> {
  const key = sha256([scope.aud, scope.sub, scope.tool, scope.idk].join('\u0000'));
  const fingerprint = sha256(canonicalJson(args ?? {}));
  const refuse = (code: string, message: string, retryAfterMs?: number): CallOutcome => {
    const error = keelError(code, message, correlationId, retryAfterMs ? { retryAfterMs } : {});
    return { result: errorResult(error), outcome: code, error };
  };
  let begun;
  try {
    begun = await store.begin(key, fingerprint, leaseMs);
  } catch {
    return refuse('UNAVAILABLE', 'Idempotency store unavailable', 1_000);
  }
  if (begun.state !== 'claimed') {
    if (begun.fingerprint !== fingerprint) {
      return refuse('INVALID_INPUT', 'This idempotency key was used with other arguments');
    }
    if (begun.state === 'running') {
      return refuse('CONFLICT', 'A call with this idempotency key is still running', 1_000);
    }
    return { result: begun.result as CallToolResult, outcome: 'replayed' };
  }
  const outcome = await run();
  try {
    if (outcome.error && (outcome.error.retryable || outcome.error.code === 'INVALID_INPUT')) {
      await store.release(key);
    } else {
      await store.complete(key, fingerprint, outcome.result, IDEMPOTENCY_RESULT_TTL_MS);
    }
  } catch {
    // The call ran; its result still goes back. The claim expires with its lease.
  }
  return outcome;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}
