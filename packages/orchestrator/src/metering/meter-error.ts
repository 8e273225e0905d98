/**
 * The error a meter throws when its store cannot answer: budgets fail closed (DESIGN.md
 * section 7), so the turn is refused with a retryable `UNAVAILABLE` rather than run unmetered.
 */
import type { KeelError } from '@keel/tool-sdk/contract';

const MARKER = Symbol.for('keel.orchestrator.MeterUnavailableError');

/** How long a caller is told to wait before trying again. */
export const METER_RETRY_AFTER_MS = 1_000;

/** The meter's store (Redis) is unreachable, slow or failing; nothing was reserved. */
export class MeterUnavailableError extends Error {
  readonly code = 'UNAVAILABLE' as const;
  readonly retryable = true;
  readonly retryAfterMs = METER_RETRY_AFTER_MS;
  /** The structured error without a correlation id; {@link toKeelError} adds the request's. */
  readonly keel: Omit<KeelError, 'correlationId'>;
  readonly [MARKER] = true;

  constructor(operation: string, options?: { cause?: unknown }) {
    // The message names the step only; the cause (kept for logs) may carry addresses.
    super(`usage meter unavailable (${operation}); try again shortly`, options);
    this.name = 'MeterUnavailableError';
    this.keel = {
      code: this.code,
      message: this.message,
      retryable: true,
      retryAfterMs: METER_RETRY_AFTER_MS,
    };
  }

  /** The KeelError for a response or stream, stamped with the request's correlation id. */
  toKeelError(correlationId: string): KeelError {
    return { ...this.keel, correlationId };
  }

  /** True for a MeterUnavailableError from any copy of this package. */
  static isInstance(value: unknown): value is MeterUnavailableError {
    return typeof value === 'object' && value !== null && MARKER in value;
  }
}
