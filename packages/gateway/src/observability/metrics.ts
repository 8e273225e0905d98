/**
 * The gateway's Prometheus metrics, in a registry of their own (never prom-client's global
 * one, so two gateways in one process, or a host app's own metrics, never clash).
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `keel_gateway_calls_total` | counter | `server`, `tool`, `outcome` |
 * | `keel_gateway_call_duration_seconds` | histogram | `server`, `tool` |
 * | `keel_gateway_attempts_total` | counter | `server`, `outcome` |
 * | `keel_gateway_retries_total` | counter | `server`, `reason` |
 * | `keel_gateway_fallbacks_total` | counter | `from`, `to` |
 * | `keel_gateway_rate_limited_total` | counter | `rule` |
 * | `keel_gateway_breaker_state` | gauge: 0 closed, 1 half-open, 2 open | `replica` |
 * | `keel_gateway_upstream_healthy` | gauge: 1 healthy, 0 not | `server`, `replica` |
 * | `keel_gateway_inbound_requests_total` | counter | `method`, `status` |
 *
 * Label cardinality is bounded, whatever callers or upstreams send:
 * - `server`, `from`, `to`: server ids, at most {@link METRIC_LABEL_LIMITS}.servers distinct
 *   values, then `_other`; likewise `tool` (exposed tool names), `replica` (replica URLs) and
 *   `rule` (rate-limit rules of the config);
 * - `outcome`, `reason`: `ok`, a built-in error code, or a tool's own upper-case code — at most
 *   `errorCodes` distinct values beyond the built-in ones, anything else `OTHER`;
 * - `method`: the usual HTTP methods, anything else `OTHER`; `status`: a 3-digit HTTP status.
 * No label ever carries a user, tenant, session, argument or correlation id.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ERROR_CODE_PATTERN, KEEL_ERROR_CODES } from '@keel/tool-sdk/contract';
import type { BreakerState } from '../policy/replica-guard.js';

/** How many distinct values each open-ended label takes before new ones are folded. */
export const METRIC_LABEL_LIMITS = {
  servers: 200,
  tools: 2_000,
  replicas: 1_000,
  rules: 200,
  errorCodes: 100,
} as const;

/** Latency buckets in seconds: 1 ms to 30 s (the default call deadline). */
export const CALL_DURATION_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
] as const;

/** One replica's health, as {@link GatewayMetrics.trackUpstreamHealth} reads it. */
export interface UpstreamHealthReading {
  serverId: string;
  replica: string;
  healthy: boolean;
}

/** Options of {@link createGatewayMetrics}. */
export interface GatewayMetricsOptions {
  /** Also export prom-client's process metrics (CPU, memory, event loop), prefixed. */
  processMetrics?: boolean;
}

/** The metrics of one gateway replica. */
export interface GatewayMetrics {
  /** Its own prom-client registry. */
  readonly registry: Registry;
  /** One logical call ended: `outcome` is `ok` or the error code the caller got. */
  recordCall(server: string, tool: string, outcome: string, durationSeconds: number): void;
  /** One attempt against one replica ended. */
  recordAttempt(server: string, outcome: string): void;
  /** A retry was scheduled; `reason` is the error code that caused it. */
  recordRetry(server: string, reason: string): void;
  recordFallback(from: string, to: string): void;
  /** A call was refused by the rate-limit rule `rule` (e.g. `user:60/60000`). */
  recordRateLimited(rule: string): void;
  setBreakerState(replica: string, state: BreakerState): void;
  setUpstreamHealthy(server: string, replica: string, healthy: boolean): void;
  /**
   * Read upstream health from `source` at every scrape instead (e.g. the health monitor's
   * `snapshot`), so the gauge covers every checked replica and drops removed ones.
   */
  trackUpstreamHealth(source: () => Iterable<UpstreamHealthReading>): void;
  /** One inbound HTTP request answered. */
  recordInbound(method: string, status: number): void;
  /** The Prometheus text exposition. */
  render(): Promise<{ contentType: string; body: string }>;
}

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };
const HTTP_METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);
const BUILT_IN_CODES = new Set<string>(KEEL_ERROR_CODES);
/** Outcomes the gateway itself produces besides error codes. */
const FIXED_OUTCOMES = new Set(['ok', 'RPC_ERROR', 'TOOL_ERROR']);

/** Admits the first `limit` distinct values, then answers `overflow` for new ones. */
function boundedLabel(limit: number, overflow: string): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (seen.size >= limit) return overflow;
    seen.add(value);
    return value;
  };
}

/**
 * Make the metrics of one gateway replica.
 *
 * @example
 * ```ts
 * import { createGatewayMetrics } from './metrics.js';
 *
 * const metrics = createGatewayMetrics();
 * metrics.recordCall('orders', 'orders__refund_order', 'ok', 0.012);
 * const { contentType, body } = await metrics.render();
 * // serve `body` with `content-type: contentType` at GET /metrics
 * ```
 */
export function createGatewayMetrics(options: GatewayMetricsOptions = {}): GatewayMetrics {
  const registry = new Registry();
  if (options.processMetrics)
    collectDefaultMetrics({ register: registry, prefix: 'keel_gateway_' });
  const registers = [registry];

  const server = boundedLabel(METRIC_LABEL_LIMITS.servers, '_other');
  const tool = boundedLabel(METRIC_LABEL_LIMITS.tools, '_other');
  const replica = boundedLabel(METRIC_LABEL_LIMITS.replicas, '_other');
  const rule = boundedLabel(METRIC_LABEL_LIMITS.rules, '_other');
  const toolCode = boundedLabel(METRIC_LABEL_LIMITS.errorCodes, 'OTHER');
  const outcome = (value: string): string => {
    if (FIXED_OUTCOMES.has(value) || BUILT_IN_CODES.has(value)) return value;
    return ERROR_CODE_PATTERN.test(value) ? toolCode(value) : 'OTHER';
  };
  const method = (value: string): string => {
    const upper = value.toUpperCase();
    return HTTP_METHODS.has(upper) ? upper : 'OTHER';
  };
  const status = (value: number): string =>
    Number.isInteger(value) && value >= 100 && value <= 599 ? String(value) : 'other';

  const calls = new Counter({
    name: 'keel_gateway_calls_total',
    help: 'Logical tool calls, by server, exposed tool and outcome (ok or error code)',
    labelNames: ['server', 'tool', 'outcome'] as const,
    registers,
  });
  const duration = new Histogram({
    name: 'keel_gateway_call_duration_seconds',
    help: 'Duration of logical tool calls, all attempts and fallbacks included',
    labelNames: ['server', 'tool'] as const,
    buckets: [...CALL_DURATION_BUCKETS],
    registers,
  });
  const attempts = new Counter({
    name: 'keel_gateway_attempts_total',
    help: 'Attempts against upstream replicas, by server and outcome',
    labelNames: ['server', 'outcome'] as const,
    registers,
  });
  const retries = new Counter({
    name: 'keel_gateway_retries_total',
    help: 'Retries scheduled, by server and the error code that caused them',
    labelNames: ['server', 'reason'] as const,
    registers,
  });
  const fallbacks = new Counter({
    name: 'keel_gateway_fallbacks_total',
    help: 'Calls handed to a fallback server',
    labelNames: ['from', 'to'] as const,
    registers,
  });
  const rateLimited = new Counter({
    name: 'keel_gateway_rate_limited_total',
    help: 'Calls refused by a rate-limit rule',
    labelNames: ['rule'] as const,
    registers,
  });
  const breaker = new Gauge({
    name: 'keel_gateway_breaker_state',
    help: 'Circuit breaker state per upstream replica: 0 closed, 1 half-open, 2 open',
    labelNames: ['replica'] as const,
    registers,
  });
  let healthSource: (() => Iterable<UpstreamHealthReading>) | undefined;
  const upstreamHealthy = new Gauge({
    name: 'keel_gateway_upstream_healthy',
    help: 'Upstream replica health from the health checks: 1 healthy, 0 unhealthy',
    labelNames: ['server', 'replica'] as const,
    registers,
    collect() {
      if (!healthSource) return;
      this.reset();
      for (const reading of healthSource()) {
        this.set(
          { server: server(reading.serverId), replica: replica(reading.replica) },
          reading.healthy ? 1 : 0,
        );
      }
    },
  });
  const inbound = new Counter({
    name: 'keel_gateway_inbound_requests_total',
    help: 'Inbound HTTP requests answered, by method and status',
    labelNames: ['method', 'status'] as const,
    registers,
  });

  return {
    registry,
    recordCall(s, t, o, durationSeconds) {
      const labels = { server: server(s), tool: tool(t) };
      calls.inc({ ...labels, outcome: outcome(o) });
      if (Number.isFinite(durationSeconds) && durationSeconds >= 0) {
        duration.observe(labels, durationSeconds);
      }
    },
    recordAttempt: (s, o) => attempts.inc({ server: server(s), outcome: outcome(o) }),
    recordRetry: (s, reason) => retries.inc({ server: server(s), reason: outcome(reason) }),
    recordFallback: (from, to) => fallbacks.inc({ from: server(from), to: server(to) }),
    recordRateLimited: (r) => rateLimited.inc({ rule: rule(r) }),
    setBreakerState: (r, state) => breaker.set({ replica: replica(r) }, BREAKER_VALUE[state]),
    setUpstreamHealthy: (s, r, healthy) =>
      upstreamHealthy.set({ server: server(s), replica: replica(r) }, healthy ? 1 : 0),
    trackUpstreamHealth(source) {
      healthSource = source;
    },
    recordInbound: (m, code) => inbound.inc({ method: method(m), status: status(code) }),
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
