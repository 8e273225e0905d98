/**
 * Structured HTTP errors: every 4xx/5xx body is `{ error: KeelError }`, never a stack.
 */
import { randomUUID } from 'node:crypto';
import type { KeelError } from '@keel/tool-sdk/contract';
import type { Response } from 'express';

/** An error a route throws to answer with `status` and a KeelError body. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: { retryable?: boolean; retryAfterMs?: number; details?: unknown } = {},
  ) {
    super(message);
  }

  toKeelError(correlationId: string): KeelError {
    return {
      code: this.code,
      message: this.message,
      retryable: this.extra.retryable ?? false,
      ...(this.extra.retryAfterMs === undefined ? {} : { retryAfterMs: this.extra.retryAfterMs }),
      ...(this.extra.details === undefined ? {} : { details: this.extra.details }),
      correlationId,
    };
  }
}

/** 404 for missing sessions and for sessions of other users alike (S07). */
export function notFound(what = 'session'): HttpError {
  return new HttpError(404, 'NOT_FOUND', `No such ${what}.`);
}

/**
 * Answers `status` with `{ error: keel }`, and `Retry-After` (whole seconds) when the error
 * says when to retry — or 1 s for a 503 that does not. A response already streaming is cut.
 */
export function sendKeelError(res: Response, status: number, keel: KeelError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (keel.retryAfterMs !== undefined) {
    res.setHeader('retry-after', String(Math.max(1, Math.ceil(keel.retryAfterMs / 1000))));
  } else if (status === 503) {
    res.setHeader('retry-after', '1');
  }
  res.status(status).json({ error: keel });
}

export function sendError(
  res: Response,
  error: HttpError,
  correlationId: string = randomUUID(),
): void {
  sendKeelError(res, error.status, error.toKeelError(correlationId));
}
