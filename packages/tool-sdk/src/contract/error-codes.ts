/**
 * The one error vocabulary of Keel (DESIGN.md section 3). Dependency-free: the gateway and the
 * orchestrator import these shapes from `@keel/tool-sdk/contract` and never re-declare them.
 */

/** The codes every Keel component may produce. Tools add their own upper-case codes. */
export const KEEL_ERROR_CODES = [
  'INVALID_INPUT',
  'INVALID_OUTPUT',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'RATE_LIMITED',
  'TIMEOUT',
  'UNAVAILABLE',
  'CIRCUIT_OPEN',
  'BUDGET_EXCEEDED',
  'LIMIT_EXCEEDED',
  'INDETERMINATE',
  'CANCELLED',
  'INTERNAL',
] as const;

/** A built-in code. */
export type BuiltInErrorCode = (typeof KEEL_ERROR_CODES)[number];

/** A built-in code, or a tool's own declared code such as `ORDER_NOT_FOUND`. */
export type KeelErrorCode = BuiltInErrorCode | `${Uppercase<string>}`;

/** The structured error carried on every channel (tool result, JSON-RPC error data, REST body). */
export interface KeelError {
  code: string;
  message: string;
  retryable: boolean;
  retryAfterMs?: number;
  details?: unknown;
  correlationId: string;
}

/** Whether a built-in code is worth retrying by default. Decisions read `retryable`, not this. */
export const DEFAULT_RETRYABLE: Readonly<Record<BuiltInErrorCode, boolean>> = {
  INVALID_INPUT: false,
  INVALID_OUTPUT: false,
  UNAUTHENTICATED: false,
  FORBIDDEN: false,
  NOT_FOUND: false,
  CONFLICT: true,
  RATE_LIMITED: true,
  TIMEOUT: true,
  UNAVAILABLE: true,
  CIRCUIT_OPEN: true,
  BUDGET_EXCEEDED: false,
  LIMIT_EXCEEDED: false,
  INDETERMINATE: false,
  CANCELLED: false,
  INTERNAL: false,
};

/** Pattern of any error code: built-in or a tool's own. */
export const ERROR_CODE_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;

/** Where a KeelError sits in an MCP tool result's `_meta`. */
export const ERROR_META_KEY = 'dev.keel/error';

/** Runtime check of the KeelError shape (e.g. for a value read from `_meta`). */
export function isKeelError(value: unknown): value is KeelError {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.code === 'string' &&
    typeof v.message === 'string' &&
    typeof v.retryable === 'boolean' &&
    typeof v.correlationId === 'string' &&
    (v.retryAfterMs === undefined || typeof v.retryAfterMs === 'number')
  );
}

/** Whether a code is one of the built-in codes. */
export function isBuiltInErrorCode(code: string): code is BuiltInErrorCode {
  return (KEEL_ERROR_CODES as readonly string[]).includes(code);
}
