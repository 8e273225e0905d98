/**
 * The error an {@link Authenticator} throws (DESIGN.md sections 3 and 6): missing or bad
 * credentials are `UNAUTHENTICATED` (HTTP 401, `WWW-Authenticate: Bearer`), a known caller
 * doing what it may not is `FORBIDDEN` (403), and an identity provider's key set that cannot
 * be fetched is `UNAVAILABLE` (503, retryable) so an IdP outage does not look like a bad token.
 * Messages never carry the token, the key or the header values that came with the request.
 */
import type { KeelError } from '@keel/tool-sdk/contract';

const MARKER = Symbol.for('keel.orchestrator.AuthError');

/** The codes an AuthError may carry. */
export type AuthErrorCode = 'UNAUTHENTICATED' | 'FORBIDDEN' | 'UNAVAILABLE';

const STATUS: Readonly<Record<AuthErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  UNAVAILABLE: 503,
};

/** How long a caller is told to wait when the identity provider's keys are unreachable. */
export const AUTH_RETRY_AFTER_MS = 5_000;

/** A request that could not be authenticated; `status` is the HTTP status to answer with. */
export class AuthError extends Error {
  readonly code: AuthErrorCode;
  readonly retryable: boolean;
  readonly status: number;
  /** The structured error for the response body (`{ error: keel }`). */
  readonly keel: KeelError;
  readonly [MARKER] = true;

  constructor(
    code: AuthErrorCode,
    message: string,
    options: { correlationId?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AuthError';
    this.code = code;
    this.retryable = code === 'UNAVAILABLE';
    this.status = STATUS[code];
    this.keel = {
      code,
      message,
      retryable: this.retryable,
      ...(this.retryable ? { retryAfterMs: AUTH_RETRY_AFTER_MS } : {}),
      correlationId: options.correlationId ?? '',
    };
  }

  /** The KeelError stamped with the request's correlation id. */
  toKeelError(correlationId: string): KeelError {
    return { ...this.keel, correlationId };
  }

  /** True for an AuthError from any copy of this package. */
  static isInstance(value: unknown): value is AuthError {
    return typeof value === 'object' && value !== null && MARKER in value;
  }
}
