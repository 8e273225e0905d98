/**
 * One `tools/call` through the gateway: rate limits, then the policy pipeline over the
 * primary server's replicas and its fallbacks, each attempt signed for its upstream, with
 * progress and log notifications relayed to the caller.
 */
import { SpanKind, SpanStatusCode, context as otelContext, trace } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { contextFromTraceparent, errorResult, traceparentOf } from '@keel/tool-sdk';
import { ERROR_META_KEY, isKeelError } from '@keel/tool-sdk/contract';
import type { KeelError } from '@keel/tool-sdk/contract';
import type { ServerConfig } from '../config/gateway-config.js';
import { GatewayError } from '../errors/gateway-error.js';
import type { CatalogEntry, ToolCatalog } from '../catalog/tool-catalog.js';
import type { UpstreamClient, Credentials } from '../upstream/upstream-client.js';
import type { CallPipeline, CallTarget, PipelineEvent } from '../policy/call-pipeline.js';
import type { RateLimiter } from '../policy/rate-limiter.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { toolPolicy } from './merge-policies.js';

/** Who the call is for (DESIGN.md section 5). */
export interface CallContext {
  /** End user, or the calling principal. */
  user: string;
  tenant?: string;
  session?: string;
  idempotencyKey?: string;
  traceparent?: string;
}

/** One routed call. */
export interface RoutedCall {
  entry: CatalogEntry;
  arguments: unknown;
  progressToken?: string | number;
  context: CallContext;
  correlationId: string;
  signal: AbortSignal;
  /** Relay a notification to the caller. */
  notify(method: string, params: Record<string, unknown>): void;
}

/** What goes back: a tool result, or a JSON-RPC error the upstream answered with. */
export type RoutedReply =
  | { result: Record<string, unknown> }
  | { error: { code: number; message: string; data?: unknown } };

/** Dependencies of {@link createCallRouter}. */
export interface CallRouterDeps {
  servers: { get(id: string): ServerConfig | undefined };
  catalog: Pick<ToolCatalog, 'find'>;
  upstream: UpstreamClient;
  pipeline: CallPipeline;
  rateLimiter: RateLimiter;
  isHealthy(replica: string): boolean;
  /** Credentials for one request to `server` on behalf of `context`. */
  credentials(
    server: ServerConfig,
    context: { sub: string; tnt?: string; sid?: string; idk?: string },
  ): Credentials;
  metrics?: GatewayMetrics;
  /** An upstream said its tool list changed (`notifications/tools/list_changed`). */
  onToolsChanged?(serverId: string): void;
  logger: Logger;
  now?: () => number;
}

/** Route calls. */
export function createCallRouter(deps: CallRouterDeps): {
  route(call: RoutedCall): Promise<RoutedReply>;
} {
  const now = deps.now ?? Date.now;
  const tracer = trace.getTracer('@keel/gateway');
  const hosts = new Map<string, string>();
  const hostOf = (replica: string): string => {
    let host = hosts.get(replica);
    if (host === undefined) {
      host = new URL(replica).host;
      if (hosts.size > 1_000) hosts.clear();
      hosts.set(replica, host);
    }
    return host;
  };

  async function route(call: RoutedCall): Promise<RoutedReply> {
    const started = now();
    const { entry } = call;
    const span = tracer.startSpan(
      `tools/call ${entry.exposed}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'mcp.method.name': 'tools/call',
          'gen_ai.tool.name': entry.exposed,
          'keel.server.id': entry.serverId,
          'keel.correlation_id': call.correlationId,
        },
      },
      contextFromTraceparent(call.context.traceparent),
    );
    let outcome = 'ok';
    let detail: Record<string, unknown> = {};
    try {
      const reply = await routeInSpan(call, span);
      if ('error' in reply) outcome = 'RPC_ERROR';
      else if (reply.result.isError === true) {
        const error = (reply.result._meta as Record<string, unknown> | undefined)?.[ERROR_META_KEY];
        outcome = isKeelError(error) ? error.code : 'TOOL_ERROR';
      }
      return reply;
    } catch (error) {
      const keel = toKeelError(error, call.correlationId);
      outcome = keel.code;
      detail = GatewayError.isInstance(error) ? { details: error.details } : {};
      return { result: errorResult(keel) as unknown as Record<string, unknown> };
    } finally {
      const latencyMs = now() - started;
      span.setAttribute('keel.outcome', outcome);
      if (outcome !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      span.end();
      deps.metrics?.recordCall(entry.serverId, entry.exposed, outcome, latencyMs / 1000);
      deps.logger.info(
        {
          correlationId: call.correlationId,
          tool: entry.exposed,
          server: entry.serverId,
          user: call.context.user,
          tenant: call.context.tenant,
          outcome,
          latencyMs,
          ...detail,
        },
        'tool call',
      );
    }
  }

  async function routeInSpan(
    call: RoutedCall,
    span: ReturnType<typeof tracer.startSpan>,
  ): Promise<RoutedReply> {
    const { entry, context } = call;
    const server = deps.servers.get(entry.serverId);
    if (!server) throw new GatewayError('UNAVAILABLE', 'Tool server is not registered');
    const primary = toolPolicy(server, entry.tool);

    const limit = await deps.rateLimiter.check(
      primary.policies.rateLimits,
      {
        user: context.user,
        serverId: entry.serverId,
        exposedTool: entry.exposed,
        ...(context.tenant !== undefined ? { tenant: context.tenant } : {}),
      },
      primary.policies.rateLimitStoreDown,
    );
    span.setAttribute('keel.rate_limit', limit.allowed ? 'allowed' : 'limited');
    if (!limit.allowed) {
      deps.metrics?.recordRateLimited(
        `${limit.rule.per}:${limit.rule.limit}/${limit.rule.windowMs}`,
      );
      throw new GatewayError('RATE_LIMITED', 'Rate limit reached for this tool', {
        retryAfterMs: limit.retryAfterMs,
        details: { per: limit.rule.per, limit: limit.rule.limit, windowMs: limit.rule.windowMs },
      });
    }

    const targets: CallTarget[] = [target(server, primary)];
    for (const id of primary.fallbacks) {
      const fallback = deps.servers.get(id);
      if (!fallback || !deps.catalog.find(id, entry.tool)) continue;
      targets.push(target(fallback, toolPolicy(fallback, entry.tool)));
    }

    // Each attempt gets a progress token of its own upstream; the caller sees its own token.
    const upstreamToken = `${call.correlationId}`;
    const relay = (method: string, params: Record<string, unknown> | undefined) => {
      if (method === 'notifications/progress') {
        if (call.progressToken === undefined || params?.progressToken !== upstreamToken) return;
        call.notify(method, { ...params, progressToken: call.progressToken });
      } else if (method === 'notifications/message') {
        call.notify(method, params ?? {});
      }
    };

    const run = await deps.pipeline.run({
      targets,
      hasIdempotencyKey: context.idempotencyKey !== undefined,
      signal: call.signal,
      onEvent: (event) => onPipelineEvent(event, span),
      attempt: async (info) => {
        const targetServer = deps.servers.get(info.serverId)!;
        const attemptSpan = tracer.startSpan(
          `attempt ${info.serverId}`,
          {
            kind: SpanKind.CLIENT,
            attributes: {
              'keel.server.id': info.serverId,
              'keel.attempt': info.attempt,
              'keel.fallback': info.fallback,
              'server.address': hostOf(info.replica),
            },
          },
          trace.setSpan(otelContext.active(), span),
        );
        const traceparent = traceparentOf(attemptSpan) ?? context.traceparent;
        const meta: Record<string, unknown> = {};
        if (call.progressToken !== undefined) meta.progressToken = upstreamToken;
        if (traceparent) meta.traceparent = traceparent;
        try {
          const reply = await deps.upstream.request({
            replica: info.replica,
            message: {
              method: 'tools/call',
              params: {
                name: entry.tool,
                arguments: call.arguments ?? {},
                ...(Object.keys(meta).length > 0 ? { _meta: meta } : {}),
              },
            },
            credentials: deps.credentials(targetServer, {
              sub: context.user,
              ...(context.tenant !== undefined ? { tnt: context.tenant } : {}),
              ...(context.session !== undefined ? { sid: context.session } : {}),
              ...(context.idempotencyKey !== undefined ? { idk: context.idempotencyKey } : {}),
            }),
            signal: info.signal,
            onNotification: (n) =>
              n.method === 'notifications/tools/list_changed'
                ? deps.onToolsChanged?.(info.serverId)
                : relay(n.method, n.params),
            ...(traceparent ? { headers: { traceparent } } : {}),
          });
          throwIfRetryable(reply);
          attemptSpan.setAttribute('keel.outcome', 'ok');
          deps.metrics?.recordAttempt(info.serverId, 'ok');
          return reply;
        } catch (error) {
          const code = GatewayError.isInstance(error) ? error.code : 'INTERNAL';
          attemptSpan.setAttribute('keel.outcome', code);
          attemptSpan.setStatus({ code: SpanStatusCode.ERROR, message: code });
          deps.metrics?.recordAttempt(info.serverId, code);
          throw error;
        } finally {
          attemptSpan.end();
        }
      },
    });
    if (run.served.fallback) span.setAttribute('keel.fallback_used', run.served.serverId);
    span.setAttribute('keel.attempts', run.attempts);
    return run.value;
  }

  function target(server: ServerConfig, policy: ReturnType<typeof toolPolicy>): CallTarget {
    return {
      serverId: server.id,
      replicas: server.urls,
      policies: policy.policies,
      idempotent: policy.idempotent,
      isHealthy: deps.isHealthy,
    };
  }

  function onPipelineEvent(event: PipelineEvent, span: ReturnType<typeof tracer.startSpan>) {
    if (event.type === 'retry-scheduled') {
      deps.metrics?.recordRetry(event.serverId, event.reason);
      span.addEvent('retry', { reason: event.reason, delayMs: event.delayMs });
    } else if (event.type === 'fallback') {
      deps.metrics?.recordFallback(event.from, event.to);
      span.addEvent('fallback', { from: event.from, to: event.to });
    } else if (event.type === 'breaker-state') {
      deps.metrics?.setBreakerState(event.replica, event.state);
    }
  }

  return { route };
}

/** An upstream tool result with a retryable KeelError becomes a failed attempt. */
function throwIfRetryable(reply: RoutedReply): void {
  if (!('result' in reply) || reply.result.isError !== true) return;
  const error = (reply.result._meta as Record<string, unknown> | undefined)?.[ERROR_META_KEY];
  if (!isKeelError(error) || !error.retryable) return;
  throw new GatewayError(error.code, error.message, {
    retryable: true,
    delivery: 'yes',
    upstream: error,
    ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
  });
}

function toKeelError(error: unknown, correlationId: string): KeelError {
  if (GatewayError.isInstance(error)) {
    // A retryable error the tool itself answered with goes back as the tool said it.
    if (error.upstream) return error.upstream;
    return error.toKeelError(correlationId);
  }
  return { code: 'INTERNAL', message: 'Internal error', retryable: false, correlationId };
}
