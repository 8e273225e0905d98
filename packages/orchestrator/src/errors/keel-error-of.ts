/**
 * The KeelError an error carries, whichever module threw it: errors with
 * `toKeelError(correlationId)` (session store, meter, traces, gateway client) or a `keel`
 * field (provider calls, auth). Anything else has none, and callers answer INTERNAL without
 * its message (it may hold addresses or secrets).
 */
import type { KeelError } from '@keel/tool-sdk/contract';

export function keelErrorOf(error: unknown, correlationId: string): KeelError | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const candidate = error as {
    toKeelError?: unknown;
    keel?: Partial<KeelError> | undefined;
  };
  if (typeof candidate.toKeelError === 'function') {
    return (candidate.toKeelError as (id: string) => KeelError)(correlationId);
  }
  const keel = candidate.keel;
  if (keel !== undefined && typeof keel.code === 'string' && typeof keel.message === 'string') {
    return {
      ...keel,
      code: keel.code,
      message: keel.message,
      retryable: keel.retryable ?? false,
      correlationId: keel.correlationId || correlationId,
    };
  }
  return undefined;
}

/** The HTTP status that answers a KeelError code on the orchestrator's REST API. */
export function httpStatusOf(code: string): number {
  switch (code) {
    case 'INVALID_INPUT':
      return 400;
    case 'UNAUTHENTICATED':
      return 401;
    case 'FORBIDDEN':
      return 403;
    case 'NOT_FOUND':
      return 404;
    case 'CONFLICT':
      return 409;
    case 'RATE_LIMITED':
    case 'BUDGET_EXCEEDED':
      return 429;
    case 'TIMEOUT':
      return 504;
    case 'UNAVAILABLE':
      return 503;
    default:
      return 500;
  }
}
