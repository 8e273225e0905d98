/**
 * The error the trace store and the OTLP exporter throw: `UNAVAILABLE` (retryable) when Redis
 * or the collector cannot answer. Tracing never fails a turn; callers log these and go on.
 */
import type { KeelError } from '@keel/tool-sdk/contract';

const MARKER = Symbol.for('keel.orchestrator.TraceError');

export class TraceError extends Error {
  readonly code = 'UNAVAILABLE';
  readonly retryable = true;
  readonly [MARKER] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TraceError';
  }

  /** The KeelError for a response, stamped with the request's correlation id. */
  toKeelError(correlationId: string): KeelError {
    return { code: this.code, message: this.message, retryable: this.retryable, correlationId };
  }

  /** True for a TraceError from any copy of this package. */
  static isInstance(value: unknown): value is TraceError {
    return typeof value === 'object' && value !== null && MARKER in value;
  }
}

/** Runs a store step; any failure becomes `UNAVAILABLE` naming only the step (the cause may carry addresses). */
export async function traceStoreStep<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (TraceError.isInstance(error)) throw error;
    throw new TraceError(`trace store unavailable (${operation})`, { cause: error });
  }
}
