import { DEFAULT_RETRYABLE, isBuiltInErrorCode } from '@keel/tool-sdk/contract';
import type { KeelError } from '@keel/tool-sdk/contract';

const MARKER = Symbol.for('dev.keel.gateway.error');

/**
 * Whether the request of a failed attempt may have reached the upstream:
 * `no` — nothing was sent (connect refused, breaker open, bulkhead full, unhealthy);
 * `maybe` — bytes were sent and no usable reply came back (reset, timeout, 5xx);
 * `yes` — the upstream answered (a tool result, possibly a retryable error).
 */
export type Delivery = 'no' | 'maybe' | 'yes';

/** Options of a {@link GatewayError}. */
export interface GatewayErrorOptions {
  retryable?: boolean;
  retryAfterMs?: number;
  details?: unknown;
  cause?: unknown;
  delivery?: Delivery;
  /** The upstream's own KeelError when it answered with one. */
  upstream?: KeelError;
}

/**
 * The gateway's one error class. A local error: on the wire it is a KeelError built by
 * {@link GatewayError.toKeelError}, without `cause` or stack.
 */
export class GatewayError extends Error {
  readonly [MARKER] = true;
  readonly code: string;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly details: unknown;
  readonly delivery: Delivery;
  readonly upstream: KeelError | undefined;

  constructor(code: string, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.retryable =
      options.retryable ?? (isBuiltInErrorCode(code) ? DEFAULT_RETRYABLE[code] : false);
    this.retryAfterMs = options.retryAfterMs;
    this.details = options.details;
    this.delivery = options.delivery ?? 'no';
    this.upstream = options.upstream;
  }

  /** Works across copies of this package, unlike `instanceof`. */
  static isInstance(value: unknown): value is GatewayError {
    return typeof value === 'object' && value !== null && MARKER in value;
  }

  /** The wire form, with the request's correlation id. */
  toKeelError(correlationId: string): KeelError {
    const error: KeelError = {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      correlationId,
    };
    if (this.retryAfterMs !== undefined) error.retryAfterMs = this.retryAfterMs;
    if (this.details !== undefined) error.details = this.details;
    return error;
  }
}
