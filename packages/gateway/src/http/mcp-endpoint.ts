/**
 * The gateway's one MCP endpoint (Streamable HTTP, stateless): initialize, ping, logging,
 * the aggregated `tools/list` filtered per caller, `tools/call` routed through the policies,
 * and a GET stream that announces `notifications/tools/list_changed`.
 */
import type { Logger } from 'pino';
import {
  BodyTooLargeError,
  acceptsEventStream,
  createLazyEventStreamReply,
  hostAllowed,
  isJsonRpcMessage,
  jsonRpcError,
  originAllowed,
  parseStrictJson,
  textResponse,
} from '@keel/tool-sdk/http';
import type { EndpointRequest, ReadBody } from '@keel/tool-sdk/http';
import { errorResult } from '@keel/tool-sdk';
import type { KeelError } from '@keel/tool-sdk/contract';
import { GatewayError } from '../errors/gateway-error.js';
import type { ToolCatalog } from '../catalog/tool-catalog.js';
import type { RoutedReply, CallContext } from '../call/call-router.js';
import {
  JsonRpcErrorCode,
  LATEST_PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '../mcp/protocol.js';
import type { Principal } from '../auth/inbound-auth.js';

/** Dependencies of the endpoint. */
export interface McpEndpointDeps {
  serverInfo: { name: string; version: string };
  maxBodyBytes: number;
  /** Host names accepted (undefined: any); set to local names when listening on loopback. */
  allowedHosts(): readonly string[] | undefined;
  authenticate(headers: Headers): Principal;
  /** The principal's own request limit; a number of ms to wait when over it. */
  overRequestLimit(principal: Principal): Promise<number | undefined>;
  endUserContext(principal: Principal, meta: Record<string, unknown> | undefined): CallContext;
  catalog: Pick<ToolCatalog, 'entries' | 'resolve' | 'version'>;
  /** Subscribe to catalog changes (for GET streams). */
  onCatalogChange(listener: () => void): () => void;
  route(call: {
    entry: NonNullable<ReturnType<ToolCatalog['resolve']>>;
    arguments: unknown;
    progressToken?: string | number;
    context: CallContext;
    correlationId: string;
    signal: AbortSignal;
    notify(method: string, params: Record<string, unknown>): void;
  }): Promise<RoutedReply>;
  isClosing(): boolean;
  newId(): string;
  logger: Logger;
  /** Heartbeat of idle GET streams. */
  heartbeatMs?: number;
  /** Called when a call starts and ends (graceful shutdown waits for in-flight calls). */
  track<T>(work: Promise<T>): Promise<T>;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

/** The handler, fetch-style. */
export function createMcpEndpoint(
  deps: McpEndpointDeps,
): (req: EndpointRequest) => Promise<Response> {
  const listResultCache = new Map<string, { version: number; json: string }>();

  return async function handle(req) {
    const correlationId = deps.newId();
    const host = req.headers.get('host');
    if (
      !hostAllowed(host, deps.allowedHosts()) ||
      !originAllowed(req.headers.get('origin'), undefined, host)
    ) {
      return jsonRpcError(
        403,
        -32000,
        keel('FORBIDDEN', 'Host or Origin not allowed', correlationId),
      );
    }
    if (deps.isClosing()) {
      return jsonRpcError(
        503,
        -32000,
        keel('UNAVAILABLE', 'Gateway is shutting down', correlationId, true),
        null,
        {
          'retry-after': '1',
        },
      );
    }
    let principal: Principal;
    try {
      principal = deps.authenticate(req.headers);
    } catch (error) {
      return failure(error, correlationId);
    }
    const waitMs = await deps.overRequestLimit(principal);
    if (waitMs !== undefined) {
      const seconds = Math.max(1, Math.ceil(waitMs / 1000));
      return jsonRpcError(
        429,
        -32000,
        {
          ...keel('RATE_LIMITED', 'Request limit of this API key reached', correlationId, true),
          retryAfterMs: waitMs,
        },
        null,
        { 'retry-after': String(seconds) },
      );
    }
    if (req.method === 'GET') return listChangedStream(req, principal);
    if (req.method !== 'POST') {
      return jsonRpcError(
        405,
        -32000,
        keel('INVALID_INPUT', 'Method not allowed', correlationId),
        null,
        {
          allow: 'GET, POST',
        },
      );
    }
    if (Number(req.headers.get('content-length') ?? '0') > deps.maxBodyBytes)
      return tooLarge(correlationId);
    let body: ReadBody;
    try {
      body = await req.readBody();
    } catch (error) {
      if (error instanceof BodyTooLargeError) return tooLarge(correlationId);
      return jsonRpcError(
        400,
        JsonRpcErrorCode.ParseError,
        keel('INVALID_INPUT', 'Could not read the request body', correlationId),
      );
    }
    const parsed = parseStrictJson(body.bytes.toString('utf8'));
    if (!parsed.ok) {
      return jsonRpcError(
        400,
        JsonRpcErrorCode.ParseError,
        keel('INVALID_INPUT', parsed.message, correlationId),
      );
    }
    const message = parsed.value;
    if (!isJsonRpcMessage(message)) {
      return jsonRpcError(
        400,
        JsonRpcErrorCode.InvalidRequest,
        keel(
          'INVALID_INPUT',
          Array.isArray(message) ? 'Batch requests are not supported' : 'Invalid JSON-RPC message',
          correlationId,
        ),
      );
    }
    const version = req.headers.get('mcp-protocol-version');
    if (
      message.method !== 'initialize' &&
      version !== null &&
      !SUPPORTED_PROTOCOL_VERSIONS.includes(version)
    ) {
      return jsonRpcError(
        400,
        -32000,
        keel('INVALID_INPUT', `Unsupported protocol version ${version}`, correlationId),
      );
    }
    // Notifications (and responses to nothing we asked) are accepted and dropped.
    if (message.id === undefined) return new Response(null, { status: 202 });
    const id = message.id;
    const params = message.params ?? {};
    switch (message.method) {
      case 'initialize':
        return reply(id, {
          protocolVersion: negotiate(params.protocolVersion),
          capabilities: { tools: { listChanged: true }, logging: {} },
          serverInfo: deps.serverInfo,
          instructions: 'Keel gateway: every tool of the registered tool servers, one endpoint.',
        });
      case 'ping':
      case 'logging/setLevel':
        return reply(id, {});
      case 'tools/list':
        return textResponse(
          `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${listJson(principal)}}`,
          {
            headers: JSON_HEADERS,
          },
        );
      case 'tools/call':
        return call(req, id, params, principal, correlationId);
      default:
        return rpcError(id, JsonRpcErrorCode.MethodNotFound, `Method not found: ${message.method}`);
    }
  };

  function listJson(principal: Principal): string {
    const cacheKey = principal.id;
    const cached = listResultCache.get(cacheKey);
    if (cached && cached.version === deps.catalog.version) return cached.json;
    const tools = deps.catalog
      .entries()
      .filter((e) => principal.allows(e.exposed))
      .map((e) => e.definition);
    const json = JSON.stringify({ tools });
    if (listResultCache.size > 1_000) listResultCache.clear();
    listResultCache.set(cacheKey, { version: deps.catalog.version, json });
    return json;
  }

  async function call(
    req: EndpointRequest,
    id: string | number,
    params: Record<string, unknown>,
    principal: Principal,
    correlationId: string,
  ): Promise<Response> {
    const name = typeof params.name === 'string' ? params.name : '';
    const entry = deps.catalog.resolve(name);
    // A tool the caller may not use is as unknown as one that does not exist.
    if (!entry || !principal.allows(name)) {
      return rpcError(id, JsonRpcErrorCode.InvalidParams, `Unknown tool: ${name}`);
    }
    const meta = isObject(params._meta) ? params._meta : undefined;
    let context: CallContext;
    try {
      context = deps.endUserContext(principal, meta);
    } catch (error) {
      // Bad end-user context is bad input to this call: a tool result, like bad arguments.
      if (!GatewayError.isInstance(error)) throw error;
      return reply(id, errorResult(error.toKeelError(correlationId)));
    }
    if (!context.traceparent) {
      const header = req.headers.get('traceparent');
      if (header) context = { ...context, traceparent: header };
    }
    const progressToken = meta?.progressToken;
    const lazy = createLazyEventStreamReply(acceptsEventStream(req.headers));
    void deps
      .track(
        deps.route({
          entry,
          arguments: params.arguments,
          ...(typeof progressToken === 'string' || typeof progressToken === 'number'
            ? { progressToken }
            : {}),
          context,
          correlationId,
          signal: req.signal,
          notify: (method, notificationParams) => lazy.notify(method, notificationParams),
        }),
      )
      .then(
        (routed) => lazy.finish({ jsonrpc: '2.0', id, ...routed }),
        () =>
          lazy.finish({
            jsonrpc: '2.0',
            id,
            error: {
              code: JsonRpcErrorCode.InternalError,
              message: 'Internal error',
              data: keel('INTERNAL', 'Internal error', correlationId),
            },
          }),
      );
    return lazy.response;
  }

  function listChangedStream(req: EndpointRequest, principal: Principal): Response {
    if (!acceptsEventStream(req.headers)) {
      return jsonRpcError(
        406,
        -32000,
        keel('INVALID_INPUT', 'GET needs Accept: text/event-stream', deps.newId()),
      );
    }
    const encoder = new TextEncoder();
    let unsubscribe: (() => void) | undefined;
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    const stop = () => {
      unsubscribe?.();
      if (heartbeat) clearInterval(heartbeat);
    };
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const send = (text: string) => {
          try {
            controller.enqueue(encoder.encode(text));
          } catch {
            stop();
          }
        };
        send(': keel gateway\n\n');
        unsubscribe = deps.onCatalogChange(() =>
          send(
            `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' })}\n\n`,
          ),
        );
        heartbeat = setInterval(() => send(': ping\n\n'), deps.heartbeatMs ?? 15_000);
        heartbeat.unref?.();
        req.signal.addEventListener('abort', () => {
          stop();
          try {
            controller.close();
          } catch {
            // already closed
          }
        });
      },
      cancel: stop,
    });
    deps.logger.debug({ principal: principal.id }, 'list_changed stream opened');
    return new Response(body, {
      headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
    });
  }
}

function negotiate(requested: unknown): string {
  return typeof requested === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(requested)
    ? requested
    : LATEST_PROTOCOL_VERSION;
}

function reply(id: string | number, result: unknown): Response {
  return textResponse(JSON.stringify({ jsonrpc: '2.0', id, result }), { headers: JSON_HEADERS });
}

function rpcError(id: string | number, code: number, message: string): Response {
  return textResponse(JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } }), {
    headers: JSON_HEADERS,
  });
}

function keel(code: string, message: string, correlationId: string, retryable = false): KeelError {
  return { code, message, retryable, correlationId };
}

function tooLarge(correlationId: string): Response {
  return jsonRpcError(413, -32000, keel('INVALID_INPUT', 'Request body too large', correlationId));
}

function failure(error: unknown, correlationId: string): Response {
  if (GatewayError.isInstance(error) && error.code === 'UNAUTHENTICATED') {
    return jsonRpcError(401, -32000, error.toKeelError(correlationId), null, {
      'www-authenticate': 'Bearer',
    });
  }
  return jsonRpcError(
    500,
    JsonRpcErrorCode.InternalError,
    keel('INTERNAL', 'Internal error', correlationId),
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
