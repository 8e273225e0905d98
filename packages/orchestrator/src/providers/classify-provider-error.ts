/**
 * Turns whatever a provider SDK threw into a ModelCallError (DESIGN.md sections 3 and 8):
 * `transient` (429, 408, 5xx, 529/overloaded, connection failures, timeouts) is what lets the
 * fallback list move on; 400/401/403/404 and other client errors are not. Messages carry the
 * provider, model and HTTP status, never an API key or a stack.
 */
import {
  AnthropicError,
  APIConnectionError as AnthropicConnectionError,
  APIConnectionTimeoutError as AnthropicTimeoutError,
  APIError as AnthropicApiError,
  APIUserAbortError as AnthropicAbortError,
} from '@anthropic-ai/sdk';
import {
  OpenAIError,
  APIConnectionError as OpenAIConnectionError,
  APIConnectionTimeoutError as OpenAITimeoutError,
  APIError as OpenAIApiError,
  APIUserAbortError as OpenAIAbortError,
} from 'openai';
import type { KeelError } from '@keel/tool-sdk/contract';
import { ModelCallError } from './model-provider.js';
import type { ModelClient } from './model-provider.js';

/** Who was called, for the error's details and message. */
export interface ProviderErrorContext {
  readonly provider: ModelClient['provider'];
  readonly model: string;
  /** Set by the caller that knows it (the turn loop); empty otherwise. */
  readonly correlationId?: string;
}

/** Details of a ModelCallError's KeelError. */
export interface ProviderErrorDetails {
  readonly provider: ModelClient['provider'];
  readonly model: string;
  readonly status?: number;
  /** The provider's error type (`rate_limit_error`, `overloaded_error`, `server_error`...). */
  readonly providerErrorType?: string;
  readonly requestId?: string;
}

/** True for an abort by the caller's signal in either SDK. Aborts are never classified. */
export function isProviderAbort(error: unknown): boolean {
  return (
    error instanceof AnthropicAbortError ||
    error instanceof OpenAIAbortError ||
    (error instanceof Error && error.name === 'AbortError')
  );
}

interface Classified {
  readonly code: string;
  readonly transient: boolean;
  readonly what: string;
}

const TRANSIENT_TYPES: Readonly<Record<string, Classified>> = {
  rate_limit_error: { code: 'RATE_LIMITED', transient: true, what: 'rate limited' },
  overloaded_error: { code: 'UNAVAILABLE', transient: true, what: 'overloaded' },
  api_error: { code: 'UNAVAILABLE', transient: true, what: 'server error' },
  server_error: { code: 'UNAVAILABLE', transient: true, what: 'server error' },
  timeout_error: { code: 'TIMEOUT', transient: true, what: 'timed out' },
};

function byStatus(status: number): Classified {
  if (status === 429) return { code: 'RATE_LIMITED', transient: true, what: 'rate limited' };
  if (status === 408) return { code: 'TIMEOUT', transient: true, what: 'timed out' };
  if (status === 529) return { code: 'UNAVAILABLE', transient: true, what: 'overloaded' };
  if (status === 504) return { code: 'TIMEOUT', transient: true, what: 'gateway timeout' };
  if (status >= 500) return { code: 'UNAVAILABLE', transient: true, what: 'server error' };
  if (status === 401)
    return { code: 'UNAUTHENTICATED', transient: false, what: 'API key rejected' };
  if (status === 403) return { code: 'FORBIDDEN', transient: false, what: 'permission denied' };
  if (status === 404)
    return { code: 'NOT_FOUND', transient: false, what: 'model or route not found' };
  return { code: 'INVALID_INPUT', transient: false, what: 'request rejected' };
}

/** Anything that looks like a key or bearer token, masked before a message leaves us. */
const SECRET_PATTERN = /\b(sk-[A-Za-z0-9_*-]{4,}|Bearer\s+\S+|[A-Za-z0-9_-]{32,})/g;

function providerMessage(value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const cleaned = value.replace(SECRET_PATTERN, '[redacted]').replace(/\s+/g, ' ').trim();
  return cleaned.length > 200 ? `${cleaned.slice(0, 200)}…` : cleaned;
}

function bodyOf(error: AnthropicApiError | OpenAIApiError): Record<string, unknown> | undefined {
  const body = error.error as unknown;
  if (typeof body !== 'object' || body === null) return undefined;
  const record = body as Record<string, unknown>;
  // Anthropic bodies are `{type:'error', error:{type, message}}`; OpenAI's SDK keeps `error`.
  const inner = record['error'];
  return typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>) : record;
}

function retryAfterMs(headers: Headers | undefined): number | undefined {
  const value = headers?.get('retry-after-ms') ?? undefined;
  if (value !== undefined && Number.isFinite(Number(value))) return Math.max(0, Number(value));
  const seconds = headers?.get('retry-after') ?? undefined;
  if (seconds !== undefined && Number.isFinite(Number(seconds)))
    return Math.max(0, Number(seconds) * 1000);
  return undefined;
}

function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  // undici: a body cut mid-stream is `TypeError: terminated`, a refused socket `fetch failed`.
  if (error instanceof TypeError && /terminated|fetch failed|socket/i.test(error.message))
    return true;
  const code = (error as { code?: unknown }).code ?? (error.cause as { code?: unknown })?.code;
  return typeof code === 'string' && /^(ECONN|EPIPE|ETIMEDOUT|UND_ERR|EAI_AGAIN)/.test(code);
}

/**
 * Classifies a provider failure. A ModelCallError passes through unchanged.
 *
 * @example
 * ```ts
 * try { await sdkCall(); } catch (error) {
 *   throw classifyProviderError(error, { provider: 'openai', model: 'gpt-4.1-mini' });
 * }
 * ```
 */
export function classifyProviderError(
  error: unknown,
  context: ProviderErrorContext,
): ModelCallError {
  if (error instanceof ModelCallError) return error;
  const { provider, model } = context;
  const correlationId = context.correlationId ?? '';
  const make = (
    classified: Classified,
    extra: {
      status?: number;
      type?: string;
      requestId?: string;
      detail?: string;
      retryAfterMs?: number;
    },
  ): ModelCallError => {
    const statusText = extra.status !== undefined ? ` (HTTP ${extra.status})` : '';
    const detail = extra.detail !== undefined ? `: ${extra.detail}` : '';
    const details: ProviderErrorDetails = {
      provider,
      model,
      ...(extra.status !== undefined ? { status: extra.status } : {}),
      ...(extra.type !== undefined ? { providerErrorType: extra.type } : {}),
      ...(extra.requestId !== undefined ? { requestId: extra.requestId } : {}),
    };
    const keel: KeelError = {
      code: classified.code,
      message: `${provider} model ${model}: ${classified.what}${statusText}${detail}`,
      retryable: classified.transient,
      ...(extra.retryAfterMs !== undefined ? { retryAfterMs: extra.retryAfterMs } : {}),
      details,
      correlationId,
    };
    return new ModelCallError(keel, classified.transient, extra.status);
  };

  if (error instanceof AnthropicTimeoutError || error instanceof OpenAITimeoutError) {
    return make({ code: 'TIMEOUT', transient: true, what: 'request timed out' }, {});
  }
  if (error instanceof AnthropicConnectionError || error instanceof OpenAIConnectionError) {
    return make({ code: 'UNAVAILABLE', transient: true, what: 'connection failed' }, {});
  }
  if (error instanceof AnthropicApiError || error instanceof OpenAIApiError) {
    const body = bodyOf(error);
    const type = typeof body?.['type'] === 'string' ? body['type'] : undefined;
    const status = typeof error.status === 'number' ? error.status : undefined;
    let classified: Classified;
    if (status !== undefined) {
      classified = type === 'overloaded_error' ? byStatus(529) : byStatus(status);
    } else {
      // An error event inside a stream carries no HTTP status, only the provider's type.
      classified = (type !== undefined ? TRANSIENT_TYPES[type] : undefined) ?? {
        code: 'UNAVAILABLE',
        transient: true,
        what: 'stream failed',
      };
    }
    const showMessage = status !== 401 && status !== 403;
    const detail = showMessage ? providerMessage(body?.['message']) : undefined;
    const requestId = typeof error.requestID === 'string' ? error.requestID : undefined;
    const after = retryAfterMs(error.headers ?? undefined);
    return make(classified, {
      ...(status !== undefined ? { status } : {}),
      ...(type !== undefined ? { type } : {}),
      ...(requestId !== undefined ? { requestId } : {}),
      ...(detail !== undefined ? { detail } : {}),
      ...(after !== undefined ? { retryAfterMs: after } : {}),
    });
  }
  if (isConnectionFailure(error)) {
    return make({ code: 'UNAVAILABLE', transient: true, what: 'connection lost' }, {});
  }
  if (error instanceof AnthropicError || error instanceof OpenAIError) {
    // The SDK refused before sending (no credentials, bad option): a setup problem.
    const detail = providerMessage(error.message);
    return make(
      { code: 'INTERNAL', transient: false, what: 'client setup failed' },
      detail !== undefined ? { detail } : {},
    );
  }
  return make({ code: 'INTERNAL', transient: false, what: 'unexpected provider failure' }, {});
}

/** The stream closed without its terminating event and without an error. */
export function streamEndedEarly(context: ProviderErrorContext): ModelCallError {
  return classifyProviderError(new TypeError('terminated'), context);
}

/**
 * What a client throws for a failure: an abort surfaces as the signal's reason (or the SDK's
 * abort error), never wrapped; anything else is classified.
 */
export function providerStreamError(
  error: unknown,
  signal: AbortSignal | undefined,
  context: ProviderErrorContext,
): unknown {
  if (signal?.aborted) return signal.reason;
  if (isProviderAbort(error)) return error;
  return classifyProviderError(error, context);
}
