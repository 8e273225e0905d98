/**
 * The orchestrator's composition root: stores (Redis, or in memory as the embedded default),
 * meter, traces, providers with fallback, the gateway client, auth, the turn service and the
 * HTTP app, with graceful shutdown.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import type { Authenticator } from './auth/principal.js';
import type { AgentConfig } from './config/agent-config.js';
import type { ModelsConfig } from './config/models-config.js';
import type { ToolGateway } from './gateway-client/tool-gateway.js';
import { createApp } from './http/create-app.js';
import { createOrchestratorMetrics, type OrchestratorMetrics } from './http/metrics.js';
import { createTurnService, type TurnService } from './http/turn-service.js';
import { createMemoryMeter } from './metering/memory-meter.js';
import type { BudgetLimits, Meter } from './metering/meter.js';
import { createRedisMeter } from './metering/redis-meter.js';
import {
  createModelClients,
  type ConfiguredModelClient,
} from './providers/create-model-clients.js';
import { streamWithFallback } from './providers/fallback-client.js';
import { estimateRequestTokens, fitToWindow } from './providers/token-estimate.js';
import { createMemorySessionStore } from './sessions/memory-session-store.js';
import { createMemoryTurnStreamStore } from './sessions/memory-turn-stream-store.js';
import { createRedisSessionStore } from './sessions/redis-session-store.js';
import { createRedisTurnStreamStore } from './sessions/redis-turn-stream-store.js';
import type { SessionStore, TurnStreamStore } from './sessions/session-store.js';
import { createMemoryTraceStore } from './traces/memory-trace-store.js';
import { createTraceExporter } from './traces/otlp-export.js';
import { createRedisTraceStore } from './traces/redis-trace-store.js';
import { createTraceRecorder, type TraceRedaction } from './traces/trace-recorder.js';
import type { TraceStore } from './traces/trace.js';
import { createMemoryStopRequests, createRedisStopRequests } from './turn/stop-requests.js';
import { createMemorySummaryStore, createRedisSummaryStore } from './turn/summary-store.js';
import type { CallModel, TurnEnvironment } from './turn/turn-deps.js';

export interface OrchestratorOptions {
  readonly agents: readonly AgentConfig[];
  readonly models: ModelsConfig;
  /** Redis for sessions, streams, usage, budgets and traces; in memory (one process) when absent. */
  readonly redis?: Redis;
  readonly gateway: ToolGateway;
  readonly authenticator: Authenticator;
  /** The agent of sessions that `POST /v1/chat` opens. Default: the first agent. */
  readonly defaultAgent?: string;
  readonly budgets?: Pick<BudgetLimits, 'userDayUsd' | 'tenantMonthUsd'>;
  /** Provider API keys and `OTEL_*` come from here. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Fetch the provider SDKs use (tests). */
  readonly modelFetch?: typeof fetch;
  readonly logger?: Logger;
  readonly redaction?: TraceRedaction;
  readonly sessionIdleTtlMs?: number;
  /** Turn lock TTL (a dead process's turn is taken over after it). Default 30 s. */
  readonly lockTtlMs?: number;
  readonly heartbeatMs?: number;
  readonly maxBufferedBytes?: number;
  readonly bodyLimitBytes?: number;
  readonly now?: () => number;
  readonly newId?: () => string;
}

export interface Orchestrator {
  readonly app: ReturnType<typeof createApp>;
  readonly env: TurnEnvironment;
  readonly turns: TurnService;
  readonly metrics: OrchestratorMetrics;
  listen(port: number, host?: string): Promise<{ port: number; url: string }>;
  /** Stops accepting requests, lets running turns finish for `graceMs`, then interrupts them. */
  close(graceMs?: number): Promise<void>;
}

interface Stores {
  sessions: SessionStore;
  streams: TurnStreamStore;
  meter: Meter;
  traces: TraceStore;
}

function storesFor(options: OrchestratorOptions, now: () => number): Stores {
  const idle =
    options.sessionIdleTtlMs === undefined ? {} : { idleTtlMs: options.sessionIdleTtlMs };
  if (options.redis !== undefined) {
    const redis = options.redis;
    return {
      sessions: createRedisSessionStore({ redis, now, ...idle }),
      streams: createRedisTurnStreamStore({ redis }),
      meter: createRedisMeter({ redis, now }),
      traces: createRedisTraceStore({ redis }),
    };
  }
  const streams = createMemoryTurnStreamStore();
  return {
    sessions: createMemorySessionStore({ now, turnStreams: streams, ...idle }),
    streams,
    meter: createMemoryMeter({ now }),
    traces: createMemoryTraceStore({ now }),
  };
}

export function createOrchestrator(options: OrchestratorOptions): Orchestrator {
  const now = options.now ?? Date.now;
  // Session, turn and message ids: 128 random bits (S07: ids cannot be guessed).
  const newId = options.newId ?? (() => randomBytes(16).toString('base64url'));
  const logger = options.logger ?? pino({ name: 'keel-orchestrator' });
  const processEnv = options.env ?? process.env;
  const metrics = createOrchestratorMetrics({ processMetrics: true });
  const stores = storesFor(options, now);
  const agents = new Map(options.agents.map((a) => [a.name, a]));
  const defaultAgent = options.defaultAgent ?? options.agents[0]?.name;
  if (defaultAgent === undefined || !agents.has(defaultAgent)) {
    throw new Error(
      `defaultAgent ${defaultAgent ?? '(none)'} is not a loaded agent — add an agent file or pick one of: ${[...agents.keys()].join(', ')}`,
    );
  }

  const clients = new Map<string, ConfiguredModelClient[]>();
  const clientsOf = (alias: string): ConfiguredModelClient[] => {
    let list = clients.get(alias);
    if (list === undefined) {
      list = createModelClients(options.models, alias, {
        env: processEnv,
        ...(options.modelFetch === undefined ? {} : { fetch: options.modelFetch }),
      });
      clients.set(alias, list);
    }
    return list;
  };
  const callModel: CallModel = (alias, request) => {
    const stream = streamWithFallback(clientsOf(alias), request, { now });
    return {
      events: stream,
      served: () => (stream.served?.client as ConfiguredModelClient | undefined)?.entry,
      attempts: () => stream.attempts,
    };
  };

  // The meter also feeds the token and cost metrics.
  const meter: Meter = {
    reserve: (...args) => stores.meter.reserve(...args),
    release: (...args) => stores.meter.release(...args),
    usage: (...args) => stores.meter.usage(...args),
    close: () => stores.meter.close(),
    async settle(reservation, usage) {
      await stores.meter.settle(reservation, usage);
      metrics.modelUsage(usage.model, usage, usage.costUsd);
    },
  };

  const exporter = createTraceExporter(processEnv);
  const env: TurnEnvironment = {
    sessions: stores.sessions,
    streams: stores.streams,
    meter,
    traces: stores.traces,
    gateway: options.gateway,
    callModel,
    models: options.models,
    budgets: options.budgets ?? {},
    estimateTokens: estimateRequestTokens,
    fitToWindow: (messages, window) => [
      ...fitToWindow(messages, {
        contextWindow: window.contextWindow,
        maxOutputTokens: window.maxOutputTokens,
        systemTokens: window.systemAndToolsTokens,
        toolsTokens: 0,
      }).messages,
    ],
    summaries:
      options.redis === undefined
        ? createMemorySummaryStore()
        : createRedisSummaryStore(options.redis, {
            ...(options.sessionIdleTtlMs === undefined ? {} : { ttlMs: options.sessionIdleTtlMs }),
          }),
    newTrace: (input) =>
      createTraceRecorder({
        ...input,
        now,
        ...(options.redaction === undefined ? {} : { redact: options.redaction }),
      }),
    ...(exporter === undefined ? {} : { exportTrace: (trace) => exporter.export(trace) }),
    logger,
    now,
    newId,
    ...(options.lockTtlMs === undefined ? {} : { lockTtlMs: options.lockTtlMs }),
  };

  const stops =
    options.redis === undefined
      ? createMemoryStopRequests(now)
      : createRedisStopRequests(options.redis);
  const turns = createTurnService(env, {
    stops,
    onTurnEnded: (status) => metrics.turnEnded(status),
  });
  const app = createApp({
    env,
    turns,
    authenticator: options.authenticator,
    agents,
    defaultAgent,
    metrics,
    ready: async () => {
      const [redis, gateway] = await Promise.all([
        options.redis === undefined
          ? Promise.resolve(true)
          : options.redis.ping().then(
              () => true,
              () => false,
            ),
        options.gateway.ping().catch(() => false),
      ]);
      return { redis, gateway };
    },
    ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
    ...(options.maxBufferedBytes === undefined
      ? {}
      : { maxBufferedBytes: options.maxBufferedBytes }),
    ...(options.bodyLimitBytes === undefined ? {} : { bodyLimitBytes: options.bodyLimitBytes }),
  });

  let server: Server | undefined;
  return {
    app,
    env,
    turns,
    metrics,
    listen(port, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        const s = app.listen(port, host, (error?: Error) => {
          if (error !== undefined) {
            reject(error);
            return;
          }
          const address = s.address() as AddressInfo;
          resolve({ port: address.port, url: `http://${host}:${address.port}` });
        });
        s.headersTimeout = 15_000;
        s.requestTimeout = 0; // streams are long; idle sockets are bounded by keepAliveTimeout
        server = s;
      });
    },
    async close(graceMs = 10_000) {
      const closing =
        server === undefined
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              server?.close(() => resolve());
            });
      await turns.drain(graceMs);
      server?.closeAllConnections();
      await closing;
      await exporter?.shutdown();
      await Promise.allSettled([
        stores.sessions.close(),
        stores.streams.close(),
        stops.close(),
        stores.meter.close(),
        stores.traces.close(),
        options.gateway.close(),
      ]);
    },
  };
}
