/**
 * The composition root: one gateway process (one replica of many) built from its config.
 */
import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { createRedisClient } from '@keel/tool-sdk';
import {
  fromNodeRequest,
  fromWebRequest,
  isLoopbackHost,
  LOCAL_HOSTS,
  writeNodeResponse,
  toWebResponse,
} from '@keel/tool-sdk/http';
import type { EndpointRequest } from '@keel/tool-sdk/http';
import { JWKS_PATH } from '@keel/tool-sdk/contract';
import type { GatewayConfig, ServerConfig } from './config/gateway-config.js';
import { mergePolicyDefaults } from './config/load-config.js';
import { GatewayError } from './errors/gateway-error.js';
import { createUpstreamClient } from './upstream/upstream-client.js';
import type { Credentials, UpstreamMessage } from './upstream/upstream-client.js';
import { createToolCatalog } from './catalog/tool-catalog.js';
import type { UpstreamTool } from './catalog/tool-catalog.js';
import { createMemoryApprovalStore, createRedisApprovalStore } from './catalog/approval-store.js';
import { createCallRouter } from './call/call-router.js';
import { createMcpEndpoint } from './http/mcp-endpoint.js';
import { createCallPipeline } from './policy/call-pipeline.js';
import { createLocalRateLimiter, createRateLimiter } from './policy/rate-limiter.js';
import { createKeyRing } from './signing/key-ring.js';
import { createCallSigner } from './signing/call-signer.js';
import { createInboundAuth, endUserContext } from './auth/inbound-auth.js';
import { createServerRegistry } from './registry/server-registry.js';
import { createHealthMonitor } from './health/health-monitor.js';
import { createAdminApi } from './admin/admin-api.js';
import { createGatewayMetrics } from './observability/metrics.js';

/** Options of {@link createGateway}. */
export interface GatewayOptions {
  config: GatewayConfig;
  /** Environment for secrets named in the config and `REDIS_URL`; default `process.env`. */
  env?: Record<string, string | undefined>;
  logger?: Logger;
  /** A Redis client to share state with other replicas; default from `REDIS_URL`, else memory. */
  redis?: Redis;
  /** Prefix of every Redis key; default `keel:gw`. */
  keyPrefix?: string;
  now?: () => number;
  newId?: () => string;
}

/** A gateway replica. */
export interface Gateway {
  /** Handle one request in-process. */
  fetch(request: Request): Promise<Response>;
  /** Load the registry, fetch every catalog, start health checks and refreshes. */
  start(): Promise<void>;
  listen(port?: number, host?: string): Promise<{ url: string; port: number }>;
  /** Fetch one server's (or every server's) tool list now. */
  refreshCatalog(serverId?: string): Promise<void>;
  /** Refuse new calls, let in-flight ones finish (up to `graceMs`), then stop. */
  close(options?: { graceMs?: number }): Promise<void>;
}

const VERSION = '0.1.0';
/** The whole inbound request (headers and body) must arrive within this (S12). */
const REQUEST_TIMEOUT_MS = 10_000;

/** Build a gateway replica from a validated config. */
export function createGateway(options: GatewayOptions): Gateway {
  const { config } = options;
  const env = options.env ?? process.env;
  const now = options.now ?? Date.now;
  const newId = options.newId ?? randomUUID;
  const logger = options.logger ?? pino({ name: 'keel-gateway' });
  const keyPrefix = options.keyPrefix ?? 'keel:gw';
  const ownsRedis = !options.redis && !!env.REDIS_URL;
  const redis =
    options.redis ??
    (env.REDIS_URL
      ? createRedisClient(env.REDIS_URL, (error) =>
          logger.warn({ errorName: error.name }, 'redis error'),
        )
      : undefined);
  const replicaId = newId();
  const issuer = config.gateway.issuer;

  const metrics = createGatewayMetrics();
  const upstream = createUpstreamClient({ clientInfo: { name: 'keel-gateway', version: VERSION } });
  const registry = createServerRegistry({
    staticServers: config.servers,
    ...(redis ? { redis } : {}),
    keyPrefix,
    logger,
  });
  const listeners = new Set<() => void>();
  const catalog = createToolCatalog({
    approvals: redis ? createRedisApprovalStore(redis, keyPrefix) : createMemoryApprovalStore(),
    namingMode: config.gateway.namespacing,
    onToolChange: config.catalog.onToolChange,
    logger,
    onChange: () => {
      for (const listener of listeners) listener();
    },
  });
  const keyRing = createKeyRing({
    config: config.signing,
    env,
    logger,
    ...(redis ? { redis, redisKey: `${keyPrefix}:devkey` } : {}),
  });
  const signer = keyRing.then((ring) => createCallSigner({ keyRing: ring, issuer, now, newId }));
  signer.catch(() => undefined);
  const auth = createInboundAuth({ config: config.auth, env, logger });
  const localLimiter = createLocalRateLimiter({ now });
  const rateLimiter = redis
    ? createRateLimiter({ redis, keyPrefix: `${keyPrefix}:rl` })
    : localLimiter;
  const pipeline = createCallPipeline({ now });
  const health = createHealthMonitor({
    registry,
    probe: (server, replica, signal) => probe(server, replica, signal),
    ...(redis ? { redis } : {}),
    keyPrefix,
    replicaId,
    intervalMs: config.health.intervalMs,
    timeoutMs: config.health.timeoutMs,
    unhealthyAfter: config.health.unhealthyAfter,
    logger,
    onChange: (replica: string, healthy: boolean) => {
      logger.warn({ replica, healthy }, healthy ? 'upstream recovered' : 'upstream unhealthy');
    },
  });

  metrics.trackUpstreamHealth(() => health.snapshot());

  function credentials(
    server: ServerConfig,
    context: { sub: string; tnt?: string; sid?: string; idk?: string },
  ): Credentials {
    const mode = server.auth;
    if (mode.mode === 'none') return () => undefined;
    if (mode.mode === 'bearer') {
      const token = env[mode.tokenEnv];
      return () => (token ? `Bearer ${token}` : undefined);
    }
    return async (body: Uint8Array, message: UpstreamMessage) => {
      const tool = message.method === 'tools/call' ? message.params?.name : undefined;
      const jwt = await (
        await signer
      ).sign({
        aud: server.id,
        ...context,
        mth: message.method,
        ...(typeof tool === 'string' ? { tool } : {}),
        body,
      });
      return `Bearer ${jwt}`;
    };
  }

  const router = createCallRouter({
    servers: registry,
    catalog,
    upstream,
    pipeline,
    rateLimiter,
    isHealthy: (replica) => health.isHealthy(replica),
    credentials,
    metrics,
    logger,
    now,
    onToolsChanged: (serverId) => void refreshCatalog(serverId),
  });

  let closing = false;
  let started = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;
  let allowedHosts: readonly string[] | undefined;
  let httpServer: HttpServer | undefined;
  let refreshTimer: ReturnType<typeof setInterval> | undefined;

  const endpoint = createMcpEndpoint({
    serverInfo: { name: 'keel-gateway', version: VERSION },
    maxBodyBytes: config.gateway.maxBodyBytes,
    allowedHosts: () => allowedHosts,
    authenticate: (headers) => auth.authenticate(headers),
    overRequestLimit: async (principal) => {
      if (!principal.requestLimit) return undefined;
      const decision = await localLimiter.check(
        [
          {
            per: 'user',
            limit: principal.requestLimit.limit,
            windowMs: principal.requestLimit.windowMs,
          },
        ],
        { user: `key:${principal.id}`, serverId: '-', exposedTool: '-' },
        'open',
      );
      return decision.allowed ? undefined : decision.retryAfterMs;
    },
    endUserContext: (principal, meta) => endUserContext(principal, meta),
    catalog,
    onCatalogChange: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    route: (call) => router.route(call),
    isClosing: () => closing,
    newId,
    logger,
    track: async (work) => {
      inFlight++;
      try {
        return await work;
      } finally {
        if (--inFlight === 0) drained?.();
      }
    },
  });

  async function listTools(server: ServerConfig, signal: AbortSignal): Promise<UpstreamTool[]> {
    const replicas = server.urls.filter((url) => health.isHealthy(url));
    let lastError: unknown = new GatewayError('UNAVAILABLE', 'No healthy replica');
    for (const replica of replicas.length > 0 ? replicas : server.urls) {
      try {
        const tools: UpstreamTool[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 100; page++) {
          const reply = await upstream.request({
            replica,
            message: { method: 'tools/list', ...(cursor ? { params: { cursor } } : {}) },
            credentials: credentials(server, { sub: issuer }),
            signal,
          });
          if ('error' in reply) throw new GatewayError('UNAVAILABLE', 'tools/list failed upstream');
          const listed = reply.result.tools;
          if (Array.isArray(listed)) tools.push(...(listed as UpstreamTool[]));
          cursor =
            typeof reply.result.nextCursor === 'string' ? reply.result.nextCursor : undefined;
          if (!cursor) break;
        }
        return tools;
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }

  async function probe(server: ServerConfig, replica: string, signal: AbortSignal): Promise<void> {
    const reply = await upstream.request({
      replica,
      message: { method: 'ping' },
      credentials: credentials(server, { sub: issuer }),
      signal,
    });
    if ('error' in reply) throw new GatewayError('UNAVAILABLE', 'ping failed upstream');
  }

  async function refreshCatalog(serverId?: string): Promise<void> {
    const servers = serverId ? registry.list().filter((s) => s.id === serverId) : registry.list();
    await Promise.all(
      servers.map(async (server) => {
        try {
          const tools = await listTools(server, AbortSignal.timeout(config.health.timeoutMs * 2));
          await catalog.update(server, tools);
        } catch (error) {
          logger.warn(
            { server: server.id, code: GatewayError.isInstance(error) ? error.code : 'ERROR' },
            'could not fetch the tool list; keeping the last one',
          );
        }
      }),
    );
  }

  const admin = createAdminApi({
    // Servers registered at run time get `defaults.policies` like the ones in the file.
    registry: {
      list: () => registry.list(),
      get: (id) => registry.get(id),
      isStatic: (id) => registry.isStatic(id),
      deregister: (id) => registry.deregister(id),
      register: (input) =>
        registry.register(
          input !== null && typeof input === 'object' && !Array.isArray(input)
            ? {
                ...input,
                policies: mergePolicyDefaults(
                  config.defaults.policies,
                  (input as { policies?: unknown }).policies,
                ),
              }
            : input,
        ),
    },
    catalog,
    adminKey: config.auth.adminKeyEnv ? env[config.auth.adminKeyEnv] : undefined,
    newId,
  });

  async function handle(req: EndpointRequest, request: () => Request): Promise<Response> {
    let response: Response;
    if (req.path === '/mcp') response = await endpoint(req);
    else if (req.path === '/healthz') response = Response.json({ status: 'ok' });
    else if (req.path === '/readyz') {
      response =
        !started || closing
          ? Response.json({ status: closing ? 'closing' : 'starting' }, { status: 503 })
          : Response.json({ status: 'ready', tools: catalog.entries().length });
    } else if (req.path === JWKS_PATH) {
      response = Response.json((await keyRing).jwks(), {
        headers: { 'cache-control': 'public, max-age=60' },
      });
    } else if (req.path === '/metrics') {
      const rendered = await metrics.render();
      response = new Response(rendered.body, { headers: { 'content-type': rendered.contentType } });
    } else if (req.path === '/admin' || req.path.startsWith('/admin/')) {
      response = await admin(request(), req.path);
    } else response = new Response('Not found', { status: 404 });
    metrics.recordInbound(req.method, response.status);
    return response;
  }

  registry.onChange((event) => {
    if (event.kind === 'deregistered') catalog.remove(event.id);
    else void refreshCatalog(event.id);
  });

  return {
    fetch: (request) => {
      const req = fromWebRequest(request, config.gateway.maxBodyBytes);
      return handle(req, () => request).then(toWebResponse);
    },
    async start() {
      await registry.start();
      await keyRing;
      await refreshCatalog();
      health.start();
      refreshTimer = setInterval(() => void refreshCatalog(), config.catalog.refreshMs);
      refreshTimer.unref();
      started = true;
    },
    refreshCatalog,
    listen(port = config.gateway.port, host = config.gateway.host) {
      if (isLoopbackHost(host)) allowedHosts = LOCAL_HOSTS;
      return new Promise((resolve, reject) => {
        const server = createServer(
          {
            requestTimeout: REQUEST_TIMEOUT_MS,
            headersTimeout: REQUEST_TIMEOUT_MS,
            connectionsCheckingInterval: 1_000,
          },
          (req, res) => {
            const endpointReq = fromNodeRequest(req, res, {
              maxBodyBytes: config.gateway.maxBodyBytes,
              requestTimeoutMs: REQUEST_TIMEOUT_MS,
            });
            const toRequest = () =>
              new Request(endpointReq.url, {
                method: endpointReq.method,
                headers: endpointReq.headers,
                ...(endpointReq.method !== 'GET' && endpointReq.method !== 'HEAD'
                  ? {
                      body: new ReadableStream({
                        async start(controller) {
                          try {
                            controller.enqueue((await endpointReq.readBody()).bytes);
                            controller.close();
                          } catch (error) {
                            controller.error(error);
                          }
                        },
                      }),
                      duplex: 'half',
                    }
                  : {}),
              } as RequestInit);
            handle(endpointReq, toRequest)
              .catch(() =>
                Response.json(
                  {
                    error: {
                      code: 'INTERNAL',
                      message: 'Internal error',
                      retryable: false,
                      correlationId: newId(),
                    },
                  },
                  { status: 500 },
                ),
              )
              .then((response) => writeNodeResponse(response, res));
          },
        );
        server.on('error', reject);
        server.listen(port, host, () => {
          httpServer = server;
          const address = server.address();
          const bound = typeof address === 'object' && address ? address.port : port;
          resolve({
            url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}/mcp`,
            port: bound,
          });
        });
      });
    },
    async close({ graceMs = 10_000 } = {}) {
      closing = true;
      if (refreshTimer) clearInterval(refreshTimer);
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          drained = resolve;
          setTimeout(resolve, graceMs).unref();
        });
      }
      if (httpServer) {
        const server = httpServer;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Idle keep-alive sockets and list_changed streams would hold close() open.
        server.closeAllConnections();
        await closed;
      }
      await health.close();
      await registry.close();
      pipeline.close();
      upstream.close();
      if (ownsRedis) redis?.disconnect();
    },
  };
}
