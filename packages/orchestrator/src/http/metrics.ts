/**
 * The orchestrator's Prometheus metrics, in a registry of its own.
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `keel_orchestrator_http_requests_total` | counter | `method`, `route`, `status` |
 * | `keel_orchestrator_http_request_duration_seconds` | histogram | `method`, `route` |
 * | `keel_orchestrator_turns_total` | counter | `status` |
 * | `keel_orchestrator_model_tokens_total` | counter | `model`, `kind` (input, output, cache_read, cache_write) |
 * | `keel_orchestrator_cost_usd_total` | counter | `model` |
 * | `keel_orchestrator_open_streams` | gauge | — |
 * | `keel_orchestrator_slow_readers_dropped_total` | counter | — |
 *
 * Labels are bounded: `route` is the matched route pattern (never a raw path), `model` a
 * models.yaml model id; no label carries a user, tenant or session.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

export interface OrchestratorMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  render(): Promise<string>;
  observeRequest(method: string, route: string, status: number, startedNs: bigint): void;
  turnEnded(status: string): void;
  modelUsage(
    model: string,
    usage: {
      inputTokens: number;
      outputTokens: number;
      cacheReadTokens: number;
      cacheWriteTokens: number;
    },
    costUsd: number,
  ): void;
  streamOpened(): void;
  streamClosed(): void;
  slowReaderDropped(): void;
}

export function createOrchestratorMetrics(
  options: { processMetrics?: boolean } = {},
): OrchestratorMetrics {
  const registry = new Registry();
  if (options.processMetrics === true) {
    collectDefaultMetrics({ register: registry, prefix: 'keel_orchestrator_' });
  }
  const requests = new Counter({
    name: 'keel_orchestrator_http_requests_total',
    help: 'HTTP requests by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'keel_orchestrator_http_request_duration_seconds',
    help: 'HTTP request duration (streams: until the stream ends).',
    labelNames: ['method', 'route'],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [registry],
  });
  const turns = new Counter({
    name: 'keel_orchestrator_turns_total',
    help: 'Turns by how they ended.',
    labelNames: ['status'],
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'keel_orchestrator_model_tokens_total',
    help: 'Model tokens by model and kind.',
    labelNames: ['model', 'kind'],
    registers: [registry],
  });
  const cost = new Counter({
    name: 'keel_orchestrator_cost_usd_total',
    help: 'Model cost in USD by model.',
    labelNames: ['model'],
    registers: [registry],
  });
  const open = new Gauge({
    name: 'keel_orchestrator_open_streams',
    help: 'SSE streams open now.',
    registers: [registry],
  });
  const dropped = new Counter({
    name: 'keel_orchestrator_slow_readers_dropped_total',
    help: 'Stream readers disconnected for falling too far behind (they can resume).',
    registers: [registry],
  });
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    observeRequest(method, route, status, startedNs) {
      const m = METHODS.has(method) ? method : 'OTHER';
      requests.inc({ method: m, route, status: String(status) });
      duration.observe({ method: m, route }, Number(process.hrtime.bigint() - startedNs) / 1e9);
    },
    turnEnded(status) {
      turns.inc({ status });
    },
    modelUsage(model, usage, costUsd) {
      tokens.inc({ model, kind: 'input' }, usage.inputTokens);
      tokens.inc({ model, kind: 'output' }, usage.outputTokens);
      tokens.inc({ model, kind: 'cache_read' }, usage.cacheReadTokens);
      tokens.inc({ model, kind: 'cache_write' }, usage.cacheWriteTokens);
      cost.inc({ model }, costUsd);
    },
    streamOpened() {
      open.inc();
    },
    streamClosed() {
      open.dec();
    },
    slowReaderDropped() {
      dropped.inc();
    },
  };
}
