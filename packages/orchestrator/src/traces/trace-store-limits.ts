/** Defaults shared by the trace stores. */

/** How long a stored trace lives: 7 days. */
export const DEFAULT_TRACE_TTL_MS = 7 * 24 * 60 * 60 * 1_000;
/** Traces kept per session; older ones drop out of the index. */
export const DEFAULT_TRACES_PER_SESSION = 200;
/** `listBySession` page size when no limit is given. */
export const DEFAULT_TRACE_LIST_LIMIT = 50;

const TRACE_ID = /^[0-9a-f]{32}$/;

/** Whether `id` is a W3C trace id; stores answer "not found" for anything else. */
export function isTraceId(id: string): boolean {
  return TRACE_ID.test(id);
}

/** Clamps a requested page size to `1..max`. */
export function clampLimit(limit: number | undefined, max: number): number {
  if (limit === undefined || !Number.isFinite(limit))
    return Math.min(DEFAULT_TRACE_LIST_LIMIT, max);
  return Math.max(1, Math.min(Math.floor(limit), max));
}
