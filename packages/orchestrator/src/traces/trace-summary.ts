import type { TraceSummary, TurnTrace } from './trace.js';

/** The list view of a trace (`GET /v1/sessions/:id/traces`). */
export function summarize(trace: TurnTrace): TraceSummary {
  return {
    traceId: trace.traceId,
    turnId: trace.turnId,
    startMs: trace.startMs,
    ...(trace.endMs !== undefined ? { endMs: trace.endMs } : {}),
    status: trace.status,
  };
}
