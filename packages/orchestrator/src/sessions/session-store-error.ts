/**
 * The error a session or turn-stream store throws. `UNAVAILABLE` (retryable) when its backing
 * store (Redis) cannot answer, so request paths fail fast; `NOT_FOUND` / `CONFLICT` otherwise.
 */
import type { KeelError } from '@keel/tool-sdk/contract';

const MARKER = Symbol.for('keel.orchestrator.SessionStoreError');

/** How long a caller is told to wait after `UNAVAILABLE`. */
export const SESSION_STORE_RETRY_AFTER_MS = 1_000;

export type SessionStoreErrorCode = 'NOT_FOUND' | 'CONFLICT' | 'UNAVAILABLE';

export class SessionStoreError extends Error {
  readonly code: SessionStoreErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly [MARKER] = true;

  constructor(code: SessionStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SessionStoreError';
    this.code = code;
    this.retryable = code === 'UNAVAILABLE';
    this.retryAfterMs = code === 'UNAVAILABLE' ? SESSION_STORE_RETRY_AFTER_MS : undefined;
  }

  /** The KeelError for a response or stream, stamped with the request's correlation id. */
  toKeelError(correlationId: string): KeelError {
    return {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...(this.retryAfterMs === undefined ? {} : { retryAfterMs: this.retryAfterMs }),
      correlationId,
    };
  }

  /** True for a SessionStoreError from any copy of this package. */
  static isInstance(value: unknown): value is SessionStoreError {
    return typeof value === 'object' && value !== null && MARKER in value;
  }
}

/** Runs a store step; any failure other than a SessionStoreError becomes `UNAVAILABLE`. */
export async function storeStep<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (SessionStoreError.isInstance(error)) throw error;
    // The message names the step only; the cause (kept for logs) may carry addresses.
    throw new SessionStoreError('UNAVAILABLE', `session store unavailable (${operation})`, {
      cause: error,
    });
  }
}
