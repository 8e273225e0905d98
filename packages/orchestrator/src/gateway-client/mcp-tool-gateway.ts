/**
 * The orchestrator's MCP client of the gateway (DESIGN.md section 5): one Streamable HTTP
 * connection authenticated with the orchestrator's service-principal key, end-user context in
 * `params._meta`, the catalog cached briefly and dropped on `notifications/tools/list_changed`,
 * progress relayed, and every tool or transport failure returned as a KeelError.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolResultSchema,
  ErrorCode,
  McpError,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ERROR_META_KEY, META_KEYS, isKeelError } from '@keel/tool-sdk/contract';
import type { KeelError } from '@keel/tool-sdk/contract';
import type { ModelToolSpec } from '../providers/model-provider.js';
import { ToolGatewayError } from './tool-gateway-error.js';
import type { ToolCallContext, ToolCallOutcome, ToolGateway } from './tool-gateway.js';

/** Options of {@link createMcpToolGateway}. */
export interface McpToolGatewayOptions {
  /** The gateway's MCP endpoint, e.g. `http://gateway:7070/mcp`. */
  readonly url: string;
  /** The orchestrator's service-principal key at the gateway (sent as `Authorization: Bearer`). */
  readonly apiKey: string;
  /** Fetch used for every request; default global fetch. */
  readonly fetch?: typeof fetch;
  /** How long a fetched catalog is used; default 30 s. */
  readonly catalogTtlMs?: number;
  /** Longest wait for one request's reply; default 120 s. */
  readonly timeoutMs?: number;
  /** Sent in `initialize`; default `keel-orchestrator`. */
  readonly clientInfo?: { readonly name: string; readonly version: string };
  /** Clock for the catalog TTL; default `Date.now`. */
  readonly now?: () => number;
  /** Correlation ids of the errors made here; default random UUIDs. */
  readonly newId?: () => string;
}

/** Default of {@link McpToolGatewayOptions.catalogTtlMs}. */
export const DEFAULT_CATALOG_TTL_MS = 30_000;
/** Default of {@link McpToolGatewayOptions.timeoutMs}. */
export const DEFAULT_GATEWAY_TIMEOUT_MS = 120_000;

/** The request was sent and its reply was lost on the way back: it may have run. */
class ReplyLostError extends Error {}

/** What the fetch wrapper knows about the `tools/call` it is carrying. */
interface CallScope {
  readonly signal: AbortSignal;
  replyLost(): void;
}

interface Connection {
  readonly client: Client;
  ready: Promise<void>;
  inflight: number;
  retired: boolean;
}

/** Network failures that prove the request never reached the gateway. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Connect the orchestrator to the gateway. Nothing is sent until the first use; a transport
 * failure retires the connection and the next use opens a new one.
 *
 * `callTool` maps the result: `isError` with `_meta["dev.keel/error"]` → that KeelError;
 * `isError` without it → `UPSTREAM_ERROR` with the text; success → `structuredContent` or else
 * `content`. A gateway that cannot be reached → `UNAVAILABLE` (retryable); no reply in
 * `timeoutMs` → `TIMEOUT` (retryable); a reply lost after the request went out →
 * `INDETERMINATE` (not retryable: the tool may have run); an abort → `CANCELLED`.
 *
 * @example
 * ```ts
 * const gateway = createMcpToolGateway({ url: 'http://127.0.0.1:7070/mcp', apiKey: process.env.KEEL_GATEWAY_API_KEY! });
 * const tools = await gateway.listTools();
 * const outcome = await gateway.callTool('orders__get_order', { id: 'o1' }, {
 *   user: 'u1', tenant: 'acme', sessionId: 's1', idempotencyKey: 's1:call-1',
 * });
 * ```
 */
export function createMcpToolGateway(options: McpToolGatewayOptions): ToolGateway {
  const url = new URL(options.url);
  const baseFetch = options.fetch ?? fetch;
  const ttlMs = options.catalogTtlMs ?? DEFAULT_CATALOG_TTL_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_GATEWAY_TIMEOUT_MS;
  const clientInfo = options.clientInfo ?? { name: 'keel-orchestrator', version: '0.1.0' };
  const now = options.now ?? Date.now;
  const newId = options.newId ?? randomUUID;
  const callScope = new AsyncLocalStorage<CallScope>();

  let connection: Connection | undefined;
  let closed = false;
  let catalog: { tools: ModelToolSpec[]; expiresAt: number } | undefined;
  let catalogGeneration = 0;
  let catalogLoad: Promise<ModelToolSpec[]> | undefined;

  const invalidateCatalog = () => {
    catalogGeneration++;
    if (catalog) catalog = { ...catalog, expiresAt: -Infinity };
  };

  /** The transport's fetch: ties a `tools/call` POST to its caller's signal and reply. */
  const scopedFetch = async (input: string | URL | Request, init?: RequestInit) => {
    const scope = callScope.getStore();
    if (!scope || init?.method !== 'POST' || !isToolsCall(init.body)) {
      return baseFetch(input, init);
    }
    // Aborting the call drops its HTTP request, which is how the gateway learns of it.
    const signal = init.signal ? AbortSignal.any([init.signal, scope.signal]) : scope.signal;
    let response: Response;
    try {
      response = await baseFetch(input, { ...init, signal });
    } catch (error) {
      if (signal.aborted || notSent(error)) throw error;
      throw new ReplyLostError('the connection failed after the request was sent', {
        cause: error,
      });
    }
    if (!response.ok || response.status !== 200 || !response.body) return response;
    const reader = response.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (error) {
          if (!signal.aborted) scope.replyLost();
          controller.error(error);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };

  function connect(): Connection {
    const client = new Client(clientInfo, { capabilities: {} });
    const transport = new StreamableHTTPClientTransport(url, {
      fetch: scopedFetch,
      requestInit: { headers: { authorization: `Bearer ${options.apiKey}` } },
    });
    const conn: Connection = {
      client,
      inflight: 0,
      retired: false,
      ready: Promise.resolve(),
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      invalidateCatalog();
    });
    // A broken notification stream may have missed a list_changed: refetch next time.
    client.onerror = () => invalidateCatalog();
    client.onclose = () => {
      if (connection === conn) connection = undefined;
    };
    conn.ready = client.connect(transport, { timeout: timeoutMs }).catch((error: unknown) => {
      retire(conn);
      throw error;
    });
    // Handled by whoever awaits it; this only keeps an unawaited failure from being unhandled.
    conn.ready.catch(() => undefined);
    return conn;
  }

  function retire(conn: Connection): void {
    if (connection === conn) connection = undefined;
    conn.retired = true;
    // The gateway is stateless per request: calls already sent finish on their own POSTs.
    if (conn.inflight === 0) void conn.client.close().catch(() => undefined);
  }

  async function use<T>(work: (client: Client) => Promise<T>): Promise<T> {
    if (closed) throw new McpError(ErrorCode.ConnectionClosed, 'The gateway client is closed');
    const conn = connection ?? (connection = connect());
    conn.inflight++;
    try {
      await conn.ready;
      return await work(conn.client);
    } catch (error) {
      if (shouldRetire(error)) retire(conn);
      throw error;
    } finally {
      conn.inflight--;
      if (conn.retired && conn.inflight === 0) void conn.client.close().catch(() => undefined);
    }
  }

  async function fetchCatalog(signal: AbortSignal | undefined): Promise<ModelToolSpec[]> {
    return use(async (client) => {
      const tools: ModelToolSpec[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listTools(cursor === undefined ? {} : { cursor }, {
          timeout: timeoutMs,
          ...(signal ? { signal } : {}),
        });
        for (const tool of page.tools) {
          tools.push({
            name: tool.name,
            ...(tool.description === undefined ? {} : { description: tool.description }),
            inputSchema: tool.inputSchema as Record<string, unknown>,
          });
        }
        cursor = page.nextCursor;
      } while (cursor !== undefined);
      return tools;
    });
  }

  return {
    async listTools(signal) {
      if (catalog && catalog.expiresAt > now()) return catalog.tools;
      if (!catalogLoad) {
        const generation = catalogGeneration;
        catalogLoad = fetchCatalog(signal)
          .then((tools) => {
            // A list_changed during the fetch means this list may already be old.
            catalog = {
              tools,
              expiresAt: generation === catalogGeneration ? now() + ttlMs : -Infinity,
            };
            return tools;
          })
          .finally(() => {
            catalogLoad = undefined;
          });
      }
      try {
        return await catalogLoad;
      } catch (error) {
        // A gateway blip does not take the tools away from a turn: the last list is kept.
        if (catalog) return catalog.tools;
        if (signal?.aborted) throw signal.reason;
        throw new ToolGatewayError(toKeelError(error, newId(), false), { cause: error });
      }
    },

    async callTool(name, input, context) {
      const correlationId = newId();
      if (context.signal?.aborted) return cancelled(correlationId);
      const own = new AbortController();
      let lost = false;
      let onLost: () => void = () => undefined;
      const replyLost = new Promise<'lost'>((resolve) => {
        onLost = () => {
          lost = true;
          resolve('lost');
        };
      });
      const signal = context.signal ? AbortSignal.any([context.signal, own.signal]) : own.signal;
      const meta = callMeta(context);
      try {
        const result = await use((client) => {
          const request = callScope.run({ signal, replyLost: onLost }, () =>
            client.request(
              {
                method: 'tools/call',
                params: { name, arguments: input as Record<string, unknown>, _meta: meta },
              },
              CallToolResultSchema,
              {
                signal,
                timeout: timeoutMs,
                ...(context.onProgress
                  ? {
                      onprogress: (p: { progress: number; total?: number; message?: string }) =>
                        context.onProgress!(p.progress, p.total, p.message),
                    }
                  : {}),
              },
            ),
          );
          request.catch(() => undefined);
          return Promise.race([request, replyLost]);
        });
        if (result === 'lost') throw new ReplyLostError('the reply stream broke');
        return toOutcome(result as CallToolResult, correlationId);
      } catch (error) {
        if (context.signal?.aborted) return cancelled(correlationId);
        return {
          ok: false,
          error: toKeelError(lost ? new ReplyLostError('lost') : error, correlationId, true),
        };
      } finally {
        // Ends the SDK's pending request (and its timer) when the reply was lost.
        own.abort();
      }
    },

    async ping(signal) {
      try {
        await use((client) =>
          client.ping({ timeout: Math.min(timeoutMs, 5_000), ...(signal ? { signal } : {}) }),
        );
        return true;
      } catch {
        return false;
      }
    },

    async close() {
      closed = true;
      const conn = connection;
      connection = undefined;
      if (conn) await conn.client.close().catch(() => undefined);
    },
  };
}

function callMeta(context: ToolCallContext): Record<string, string> {
  return {
    [META_KEYS.user]: context.user,
    [META_KEYS.tenant]: context.tenant,
    [META_KEYS.session]: context.sessionId,
    [META_KEYS.idempotencyKey]: context.idempotencyKey,
    ...(context.traceparent === undefined ? {} : { [META_KEYS.traceparent]: context.traceparent }),
  };
}

function toOutcome(result: CallToolResult, correlationId: string): ToolCallOutcome {
  if (result.isError) {
    const error = result._meta?.[ERROR_META_KEY];
    if (isKeelError(error)) return { ok: false, error };
    const text = result.content
      .flatMap((part) => (part.type === 'text' ? [part.text] : []))
      .join('\n')
      .slice(0, 4_000);
    return {
      ok: false,
      error: {
        code: 'UPSTREAM_ERROR',
        message: text || 'The tool reported an error without a message',
        retryable: false,
        correlationId,
      },
    };
  }
  return { ok: true, output: result.structuredContent ?? result.content };
}

function cancelled(correlationId: string): ToolCallOutcome {
  return {
    ok: false,
    error: {
      code: 'CANCELLED',
      message: 'The tool call was cancelled',
      retryable: false,
      correlationId,
    },
  };
}

function isToolsCall(body: RequestInit['body']): boolean {
  if (typeof body !== 'string') return false;
  try {
    const message = JSON.parse(body) as { method?: unknown };
    return message.method === 'tools/call';
  } catch {
    return false;
  }
}

function notSent(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NOT_SENT_CODES.has(code)) return true;
    const nested = (e as { errors?: unknown }).errors;
    if (Array.isArray(nested) && nested.some(notSent)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

function shouldRetire(error: unknown): boolean {
  if (error instanceof McpError) {
    return error.code === ErrorCode.ConnectionClosed || error.code === ErrorCode.RequestTimeout;
  }
  if (error instanceof StreamableHTTPError) {
    const status = error.code ?? 0;
    return status < 0 || status >= 500;
  }
  // Network errors, a lost reply, anything else the transport threw.
  return true;
}

/** The JSON-RPC error body of a non-2xx gateway answer, when there is one. */
function keelErrorInHttpError(error: StreamableHTTPError): KeelError | undefined {
  const start = error.message.indexOf('{');
  if (start < 0) return undefined;
  try {
    const body = JSON.parse(error.message.slice(start)) as { error?: { data?: unknown } };
    return isKeelError(body.error?.data) ? body.error.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A thrown transport or protocol error as a KeelError. `sent` says whether a tool call may
 * have reached the gateway (only then is a lost reply INDETERMINATE).
 */
function toKeelError(error: unknown, correlationId: string, sent: boolean): KeelError {
  const make = (
    code: string,
    message: string,
    retryable: boolean,
    extra: Partial<KeelError> = {},
  ) => ({
    code,
    message,
    retryable,
    ...extra,
    correlationId,
  });
  if (error instanceof ReplyLostError) {
    return sent
      ? make(
          'INDETERMINATE',
          'The connection to the gateway broke after the call was sent; it may have run',
          false,
        )
      : make('UNAVAILABLE', 'The connection to the gateway broke', true);
  }
  if (error instanceof McpError) {
    if (error.code === ErrorCode.RequestTimeout) {
      return make('TIMEOUT', 'The gateway did not answer in time', true);
    }
    if (isKeelError(error.data)) return { ...error.data };
    if (error.code === ErrorCode.ConnectionClosed) {
      return make('UNAVAILABLE', 'The gateway connection was closed', true);
    }
    if (error.code === ErrorCode.InvalidParams) {
      return make(
        'INVALID_INPUT',
        `The gateway refused the call: ${safeText(error.message)}`,
        false,
      );
    }
    if (error.code === ErrorCode.MethodNotFound) {
      return make(
        'NOT_FOUND',
        `The gateway does not support this: ${safeText(error.message)}`,
        false,
      );
    }
    return make(
      'UNAVAILABLE',
      `The gateway answered with an error: ${safeText(error.message)}`,
      true,
    );
  }
  if (error instanceof StreamableHTTPError) {
    const status = error.code ?? -1;
    const fromBody = keelErrorInHttpError(error);
    if (fromBody) return { ...fromBody };
    if (status === 401) {
      return make('UNAUTHENTICATED', "The gateway refused the orchestrator's API key", false);
    }
    if (status === 403) return make('FORBIDDEN', 'The gateway refused the request', false);
    if (status === 429)
      return make('RATE_LIMITED', 'The gateway is rate limiting the orchestrator', true);
    return make('UNAVAILABLE', `The gateway answered HTTP ${status}`, true);
  }
  return make('UNAVAILABLE', 'The gateway cannot be reached', true);
}

/** Gateway messages are short and ours to show; keep them on one line and bounded. */
function safeText(message: string): string {
  return message
    .replace(/^MCP error -?\d+: /, '')
    .replace(/\s+/g, ' ')
    .slice(0, 300);
}
