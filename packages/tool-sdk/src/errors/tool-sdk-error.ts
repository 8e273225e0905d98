import { DEFAULT_RETRYABLE, isBuiltInErrorCode } from '../contract/index.js';
import type { KeelError } from '../contract/index.js';

const MARKER = Symbol.for('dev.keel.tool-sdk.error');

/** Options of a {@link ToolSdkError}. */
export interface ToolSdkErrorOptions {
  retryable?: boolean;
  retryAfterMs?: number;
  details?: unknown;
  cause?: unknown;
}

/**
 * The tool-sdk's one error class. A local error: it becomes a KeelError on the wire through
 * {@link ToolSdkError.toKeelError}, which drops `cause` and any stack.
 *
 * @example
 * throw new ToolSdkError('ORDER_NOT_FOUND', 'No order ord_1', { retryable: false });
 */
export class ToolSdkError extends Error {
  readonly [MARKER] = true;
  readonly code: string;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly details: unknown;

  constructor(code: string, message: string, options: ToolSdkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ToolSdkError';
    this.code = code;
    this.retryable =
      options.retryable ?? (isBuiltInErrorCode(code) ? DEFAULT_RETRYABLE[code] : false);
    this.retryAfterMs = options.retryAfterMs;
    this.details = options.details;
  }

  /** Works across copies of this package, unlike `instanceof`. */
  static isInstance(value: unknown): value is ToolSdkError {
    return typeof value === 'object' && value !== null && MARKER in value;
  }

  /** The wire form, with the request's correlation id. */
  toKeelError(correlationId: string): KeelError {
    return keelError(this.code, this.message, correlationId, this);
  }
}

/** Build a KeelError; `retryable` defaults from the code. */
export function keelError(
  code: string,
  message: string,
  correlationId: string,
  options: Omit<ToolSdkErrorOptions, 'cause'> = {},
): KeelError {
  const error: KeelError = {
    code,
    message,
    retryable: options.retryable ?? (isBuiltInErrorCode(code) ? DEFAULT_RETRYABLE[code] : false),
    correlationId,
  };
  if (options.retryAfterMs !== undefined) error.retryAfterMs = options.retryAfterMs;
  if (options.details !== undefined) error.details = options.details;
  return error;
}
