import { createServer } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { Router } from 'express';
import type { Router as ExpressRouter } from 'express';
import { SERVER_ID_PATTERN } from '../contract/index.js';
import { ToolSdkError, keelError } from '../errors/tool-sdk-error.js';
import type { AnyTool, Caller } from '../tool/define-tool.js';
import { createToolRegistry } from '../tool/tool-registry.js';
import { executeToolCall } from '../call/execute-call.js';
import { createCallTokenVerifier } from '../auth/call-token-verifier.js';
import type { CallTokenAuthOptions, CallTokenVerifier } from '../auth/call-token-verifier.js';
import { createMemoryReplayStore } from '../stores/replay-store.js';
import type { ReplayStore } from '../stores/replay-store.js';
import { createRedisReplayStore } from '../stores/redis-replay-store.js';
import { createRedisClient } from '../stores/redis-client.js';
import { createMemoryIdempotencyStore } from '../stores/idempotency-store.js';
import type { IdempotencyStore } from '../stores/idempotency-store.js';
import { createRedisIdempotencyStore } from '../stores/redis-idempotency-store.js';
import { runIdempotent } from '../call/idempotent-call.js';
import { DEFAULT_TOOL_TIMEOUT_MS } from '../call/execute-call.js';
import { parseStrictJson } from '../json/strict-json.js';
import { endCallSpan, startCallSpan } from '../observability/tracing.js';
import { SUPPORTED_PROTOCOL_VERSIONS, JsonRpcErrorCode } from '../mcp/protocol.js';
import type { CallToolResult, LoggingLevel } from '../mcp/protocol.js';
import { createSdkServer, handleWithSdk, serveSdkStdio } from '../mcp/sdk-server.js';
import { BodyTooLargeError } from './body.js';
import type { ReadBody } from './body.js';
import { jsonRpcError, jsonRpcErrorBody } from './json-rpc.js';
import {
  LOCAL_HOSTS as LOCAL_HOST_NAMES,
  hostAllowed,
  isJsonRpcMessage,
  isLoopbackHost,
  originAllowed,
} from './request-guards.js';
import {
  fromNodeRequest,
  fromWebRequest,
  textResponse,
  toWebResponse,
  writeNodeResponse,
} from './node-adapter.js';
import { acceptsEventStream, createLazyEventStreamReply } from './lazy-event-stream.js';
import type { EndpointRequest } from './node-adapter.js';

/** Request limits. */
export interface ToolServerLimits {
  /** Body cap in bytes; default 1 MiB (413 above). */
  maxBodyBytes?: number;
  /** Cap on one result; default 1 MiB. */
  maxOutputBytes?: number;
  /** Time to receive a whole request; default 10 s. */
  requestTimeoutMs?: number;
  /** Host header values accepted; default: any when listening on a public address, local names on loopback. */
  allowedHosts?: string[];
  /** Origin values accepted when a browser sends one; default: local origins only. */
  allowedOrigins?: string[];
}

/** Options of {@link createToolServer}. */
export interface ToolServerOptions {
  /** Server id (DESIGN.md section 2) and default token audience. */
  id: string;
  name?: string;
  version?: string;
  tools: readonly AnyTool[];
  /** Call-token auth, or `'none'` (development only, logged loudly). Default: from `KEEL_*` env. */
  auth?: CallTokenAuthOptions | 'none';
  limits?: ToolServerLimits;
  /** A pino logger; default JSON lines on stdout (stderr on stdio). */
  logger?: Logger;
  /** Replay and idempotency stores; default memory, or Redis when `REDIS_URL` is set. */
  stores?: { replay?: ReplayStore; idempotency?: IdempotencyStore };
  /** Path of the MCP endpoint; default `/mcp`. */
  mcpPath?: string;
  /** Environment to read `KEEL_*` and `REDIS_URL` from; default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Injected clock (ms) and id generator. */
  now?: () => number;
  newId?: () => string;
}

/** A running-or-ready tool server. */
export interface ToolServer {
  readonly id: string;
  /** Handle one request in-process (tests, edge runtimes). */
  fetch(request: Request): Promise<Response>;
  /** An express router serving `/mcp`, `/healthz`, `/readyz`; mount it at any path, before body parsers. */
  router(): ExpressRouter;
  /** Listen on a port (0 for any); resolves with the bound URL. */
  listen(port?: number, host?: string): Promise<{ url: string; port: number }>;
  /** Serve over stdio (local IDE use; no auth). */
  serveStdio(): Promise<void>;
  /** Stop: refuse new calls, let in-flight ones finish (up to `graceMs`), then close. */
  close(options?: { graceMs?: number }): Promise<void>;
}

const SERVER_INFO_DEFAULT_VERSION = '0.0.0';

/**
 * Create a tool server.
 *
 * @example
 * const server = createToolServer({ id: 'orders', tools: [getOrder] });
 * await server.listen(7101);
 */
export function createToolServer(options: ToolServerOptions): ToolServer {
  if (!SERVER_ID_PATTERN.test(options.id)) {
    throw new ToolSdkError(
      'INVALID_CONFIG',
      `Server id "${options.id}" must match ${SERVER_ID_PATTERN}`,
    );
  }
  const env = options.env ?? process.env;
  const now = options.now ?? Date.now;
  const newId = options.newId ?? randomUUID;
  const logger = options.logger ?? pino({ name: options.id });
  const registry = createToolRegistry(options.tools);
  const info = {
    name: options.name ?? options.id,
    version: options.version ?? SERVER_INFO_DEFAULT_VERSION,
  };
  const mcpPath = options.mcpPath ?? '/mcp';
  const limits = {
    maxBodyBytes: options.limits?.maxBodyBytes ?? 1024 * 1024,
    maxOutputBytes: options.limits?.maxOutputBytes ?? 1024 * 1024,
    requestTimeoutMs: options.limits?.requestTimeoutMs ?? 10_000,
  };
  let allowedHosts = options.limits?.allowedHosts;
  const allowedOrigins = options.limits?.allowedOrigins;

  const auth = resolveAuth(options, env);
  let verifier: Promise<CallTokenVerifier> | undefined;
  let replay: ReplayStore | undefined;
  let idempotency: IdempotencyStore | undefined;
  const redis = env.REDIS_URL
    ? createRedisClient(env.REDIS_URL, (error) =>
        logger.warn({ errorName: error.name }, 'redis error'),
      )
    : undefined;
  if (auth === 'none') {
    logger.warn(
      { security: 'auth-disabled' },
      'CALL-TOKEN AUTH IS OFF (development mode): any caller can run these tools. Set KEEL_JWKS_URL and KEEL_ISSUER for production.',
    );
  } else {
    verifier = createCallTokenVerifier({ ...auth, audience: auth.audience ?? options.id }, now);
    verifier.catch(() => undefined);
    const audience = auth.audience ?? options.id;
    replay =
      options.stores?.replay ??
      (redis ? createRedisReplayStore(redis, audience, now) : createMemoryReplayStore(now));
    idempotency =
      options.stores?.idempotency ??
      (redis ? createRedisIdempotencyStore(redis, audience) : createMemoryIdempotencyStore(now));
  }

  let closing = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const inFlightControllers = new Set<AbortController>();
  let httpServer: HttpServer | undefined;

  async function runCall(
    name: string,
    args: unknown,
    call: {
      signal: AbortSignal;
      caller: Caller | undefined;
      idempotencyKey: string | undefined;
      correlationId: string;
      progressToken: string | number | undefined;
      traceparent: string | undefined;
      notify: (method: string, params: Record<string, unknown>) => Promise<void>;
    },
  ): Promise<CallToolResult> {
    const tool = registry.get(name)!;
    const started = now();
    const span = startCallSpan(name, options.id, call.traceparent);
    const execute = () =>
      executeToolCall(tool, args, {
        signal: call.signal,
        caller: call.caller,
        idempotencyKey: call.idempotencyKey,
        correlationId: call.correlationId,
        maxOutputBytes: limits.maxOutputBytes,
        ...(call.progressToken !== undefined
          ? {
              sendProgress: (
                progress: number,
                total: number | undefined,
                message: string | undefined,
              ) =>
                call.notify('notifications/progress', {
                  progressToken: call.progressToken,
                  progress,
                  ...(total !== undefined ? { total } : {}),
                  ...(message !== undefined ? { message } : {}),
                }),
            }
          : {}),
        sendLog: (level: LoggingLevel, data: unknown) =>
          call.notify('notifications/message', { level, logger: tool.name, data }),
      });
    const outcome =
      idempotency && call.idempotencyKey && call.caller
        ? await runIdempotent(
            idempotency,
            {
              aud: audienceOf(auth, options.id),
              sub: call.caller.sub,
              tool: name,
              idk: call.idempotencyKey,
            },
            args,
            (tool.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS) + 5_000,
            call.correlationId,
            execute,
          )
        : await execute();
    const line = {
      correlationId: call.correlationId,
      tool: name,
      caller: call.caller?.sub,
      tenant: call.caller?.tnt,
      outcome: outcome.outcome,
      latencyMs: now() - started,
      ...outcome.logDetail,
    };
    endCallSpan(span, outcome.outcome, call.correlationId);
    if (outcome.outcome === 'INTERNAL' || outcome.outcome === 'INVALID_OUTPUT')
      logger.error(line, 'tool call failed');
    else logger.info(line, 'tool call');
    return outcome.result;
  }

  async function handle(req: EndpointRequest): Promise<Response> {
    const correlationId = newId();
    if (req.path === '/healthz') return Response.json({ status: 'ok' });
    if (req.path === '/readyz') {
      return closing
        ? Response.json({ status: 'closing' }, { status: 503 })
        : Response.json({ status: 'ready' });
    }
    if (req.path !== mcpPath) return new Response('Not found', { status: 404 });

    const host = req.headers.get('host');
    const origin = req.headers.get('origin');
    if (!hostAllowed(host, allowedHosts) || !originAllowed(origin, allowedOrigins, host)) {
      return jsonRpcError(
        403,
        -32000,
        keelError('FORBIDDEN', 'Host or Origin not allowed', correlationId),
      );
    }
    if (closing) {
      return jsonRpcError(
        503,
        -32000,
        keelError('UNAVAILABLE', 'Server is shutting down', correlationId),
      );
    }
    const declared = Number(req.headers.get('content-length') ?? '0');
    if (declared > limits.maxBodyBytes) return tooLarge(correlationId);
    let body: ReadBody;
    try {
      body = await req.readBody();
    } catch (error) {
      if (error instanceof BodyTooLargeError) return tooLarge(correlationId);
      return jsonRpcError(
        400,
        -32700,
        keelError('INVALID_INPUT', 'Could not read the request body', correlationId),
      );
    }

    let caller: Caller | undefined;
    let claims: { mth: string; tool?: string; idk?: string } | undefined;
    if (verifier && replay) {
      const header = req.headers.get('authorization') ?? '';
      const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
      if (!token) return unauthenticated(correlationId, 'missing bearer token');
      let verified;
      try {
        verified = await (await verifier)(token, body.hash);
      } catch (error) {
        const reason = ToolSdkError.isInstance(error)
          ? (error.details as { reason?: string })?.reason
          : 'error';
        return unauthenticated(correlationId, reason ?? 'rejected');
      }
      let fresh: boolean;
      try {
        fresh = await replay.claim(verified.jti, verified.exp * 1000 + 5_000);
      } catch {
        logger.error(
          { correlationId },
          'replay store unreachable: refusing the call (fail closed)',
        );
        return jsonRpcError(
          503,
          -32000,
          keelError('UNAVAILABLE', 'Replay store unavailable', correlationId, {
            retryAfterMs: 1000,
          }),
          null,
          { 'retry-after': '1' },
        );
      }
      if (!fresh) return unauthenticated(correlationId, 'token replayed');
      caller = { sub: verified.sub, iss: verified.iss };
      if (verified.tnt !== undefined) caller.tnt = verified.tnt;
      if (verified.sid !== undefined) caller.sid = verified.sid;
      claims = verified;
    }

    const text = body.bytes.toString('utf8');
    if (req.method !== 'POST') {
      return handleWithSdk(sdkServer(), toRequest(req, undefined), undefined, {
        caller,
        idempotencyKey: claims?.idk,
      });
    }
    const parsed = parseStrictJson(text);
    if (!parsed.ok) {
      return jsonRpcError(
        400,
        JsonRpcErrorCode.ParseError,
        keelError('INVALID_INPUT', parsed.message, correlationId),
      );
    }
    const message = parsed.value;
    if (!isJsonRpcMessage(message)) {
      return jsonRpcError(
        400,
        JsonRpcErrorCode.InvalidRequest,
        keelError(
          'INVALID_INPUT',
          Array.isArray(message) ? 'Batch requests are not supported' : 'Invalid JSON-RPC message',
          correlationId,
        ),
      );
    }
    if (claims && claims.mth !== message.method)
      return unauthenticated(correlationId, 'method does not match token');
    const protocolVersion = req.headers.get('mcp-protocol-version');
    if (
      message.method !== 'initialize' &&
      protocolVersion !== null &&
      !SUPPORTED_PROTOCOL_VERSIONS.includes(protocolVersion)
    ) {
      return jsonRpcError(
        400,
        -32000,
        keelError(
          'INVALID_INPUT',
          `Unsupported protocol version ${protocolVersion}`,
          correlationId,
        ),
      );
    }

    if (message.id !== undefined && message.method === 'tools/list') {
      return textResponse(
        `{"jsonrpc":"2.0","id":${JSON.stringify(message.id)},"result":${registry.listResultJson}}`,
        {
          headers: { 'content-type': 'application/json' },
        },
      );
    }
    if (message.id !== undefined && message.method === 'tools/call') {
      const params = (message.params ?? {}) as {
        name?: unknown;
        arguments?: unknown;
        _meta?: Record<string, unknown>;
      };
      const name = typeof params.name === 'string' ? params.name : '';
      if (claims && claims.tool !== name)
        return unauthenticated(correlationId, 'tool does not match token');
      if (!registry.get(name)) {
        return textResponse(
          jsonRpcErrorBody(message.id, JsonRpcErrorCode.InvalidParams, `Unknown tool: ${name}`),
          {
            headers: { 'content-type': 'application/json' },
          },
        );
      }
      return fastCall(req, message.id, name, params, caller, claims?.idk, correlationId);
    }
    return handleWithSdk(sdkServer(), toRequest(req, body.bytes), message, {
      caller,
      idempotencyKey: claims?.idk,
    });
  }

  function fastCall(
    req: EndpointRequest,
    id: string | number,
    name: string,
    params: { arguments?: unknown; _meta?: Record<string, unknown> },
    caller: Caller | undefined,
    idempotencyKey: string | undefined,
    correlationId: string,
  ): Promise<Response> {
    const progressToken = params._meta?.progressToken as string | number | undefined;
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    req.signal.addEventListener('abort', onAbort, { once: true });
    inFlight++;
    inFlightControllers.add(controller);
    const reply = createLazyEventStreamReply(acceptsEventStream(req.headers));
    const notify = async (method: string, notificationParams: Record<string, unknown>) =>
      reply.notify(method, notificationParams);
    void runCall(name, params.arguments, {
      signal: controller.signal,
      caller,
      idempotencyKey,
      correlationId,
      progressToken,
      traceparent:
        metaString(params._meta, 'traceparent') ?? req.headers.get('traceparent') ?? undefined,
      notify,
    })
      .then((result) => reply.finish({ jsonrpc: '2.0', id, result }))
      .finally(() => {
        req.signal.removeEventListener('abort', onAbort);
        inFlightControllers.delete(controller);
        if (--inFlight === 0) drained?.();
      });
    return reply.response;
  }

  function sdkServer() {
    return createSdkServer(info, registry, (name, args, extra) =>
      runCall(name, args, {
        signal: extra.signal,
        caller: extra.caller,
        idempotencyKey: extra.idempotencyKey,
        correlationId: newId(),
        progressToken: extra.progressToken,
        traceparent: undefined,
        notify: extra.sendNotification,
      }),
    );
  }

  function toRequest(req: EndpointRequest, body: Buffer | undefined): Request {
    return new Request(req.url, {
      method: req.method,
      headers: req.headers,
      ...(body && body.length > 0 ? { body } : {}),
      signal: req.signal,
    });
  }

  async function serveNode(
    req: IncomingMessage,
    res: ServerResponse,
    basePath = '',
  ): Promise<void> {
    let response: Response;
    try {
      response = await handle(fromNodeRequest(req, res, { ...limits, basePath }));
    } catch (error) {
      const correlationId = newId();
      logger.error({ correlationId, errorName: (error as Error)?.name }, 'request failed');
      response = jsonRpcError(
        500,
        JsonRpcErrorCode.InternalError,
        keelError('INTERNAL', 'Internal error', correlationId),
      );
    }
    writeNodeResponse(response, res);
  }

  return {
    id: options.id,
    fetch: (request) => handle(fromWebRequest(request, limits.maxBodyBytes)).then(toWebResponse),
    router() {
      const router = Router();
      // Inside a router express makes req.url relative to the mount path.
      router.use((req, res) => void serveNode(req, res));
      return router;
    },
    listen(port = 0, host = '127.0.0.1') {
      if (allowedHosts === undefined && isLoopbackHost(host)) {
        allowedHosts = [...LOCAL_HOST_NAMES];
      }
      return new Promise((resolve, reject) => {
        const server = createServer(
          {
            requestTimeout: limits.requestTimeoutMs,
            headersTimeout: limits.requestTimeoutMs,
            connectionsCheckingInterval: Math.min(1_000, limits.requestTimeoutMs),
          },
          (req, res) => void serveNode(req, res),
        );
        server.on('error', reject);
        server.listen(port, host, () => {
          httpServer = server;
          const address = server.address();
          const bound = typeof address === 'object' && address ? address.port : port;
          resolve({
            url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}${mcpPath}`,
            port: bound,
          });
        });
      });
    },
    serveStdio: () => serveSdkStdio(sdkServer()),
    async close({ graceMs = 10_000 } = {}) {
      closing = true;
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          drained = resolve;
          const t = setTimeout(() => {
            for (const c of inFlightControllers) c.abort();
            resolve();
          }, graceMs);
          t.unref();
        });
      }
      if (httpServer) await new Promise<void>((resolve) => httpServer!.close(() => resolve()));
      httpServer?.closeAllConnections();
      await replay?.close?.();
      await idempotency?.close?.();
      redis?.disconnect();
    },
  };
}

function resolveAuth(
  options: ToolServerOptions,
  env: Record<string, string | undefined>,
): CallTokenAuthOptions | 'none' {
  if (options.auth !== undefined) return options.auth;
  if (env.KEEL_AUTH === 'none') return 'none';
  if (!env.KEEL_JWKS_URL || !env.KEEL_ISSUER) {
    if (env.KEEL_AUTH === undefined) return 'none';
    throw new ToolSdkError(
      'INVALID_CONFIG',
      'Set KEEL_JWKS_URL and KEEL_ISSUER, or KEEL_AUTH=none for development',
    );
  }
  return {
    jwksUrl: env.KEEL_JWKS_URL,
    issuer: env.KEEL_ISSUER,
    ...(env.KEEL_AUDIENCE ? { audience: env.KEEL_AUDIENCE } : {}),
    ...(env.KEEL_ALG === 'ES256' ? { algorithm: 'ES256' as const } : {}),
  };
}

function metaString(meta: Record<string, unknown> | undefined, key: string): string | undefined {
  const value = meta?.[key];
  return typeof value === 'string' ? value : undefined;
}

function audienceOf(auth: CallTokenAuthOptions | 'none', id: string): string {
  return auth === 'none' ? id : (auth.audience ?? id);
}

function tooLarge(correlationId: string): Response {
  return jsonRpcError(
    413,
    -32000,
    keelError('INVALID_INPUT', 'Request body too large', correlationId),
  );
}

function unauthenticated(correlationId: string, reason: string): Response {
  return jsonRpcError(
    401,
    -32000,
    keelError('UNAUTHENTICATED', 'Invalid or missing call token', correlationId, {
      details: { reason },
    }),
    null,
    { 'www-authenticate': 'Bearer error="invalid_token"' },
  );
}
