/**
 * OTLP export of finished turn traces (DESIGN.md section 10), on when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
 *
 * Our spans are already finished and carry their own W3C ids, so they are turned into
 * `ReadableSpan`s directly and handed to the OTLP/HTTP (JSON) exporter: no tracer, no
 * context, no id generator to bend.
 */
import { SpanKind as OtelSpanKind, SpanStatusCode, TraceFlags } from '@opentelemetry/api';
import type { Attributes, HrTime, SpanContext } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ERROR_TYPE, KEEL_ATTRIBUTES, ORCHESTRATOR_SERVICE_NAME } from './genai-attributes.js';
import type { SpanKind, TraceSpan, TurnTrace } from './trace.js';
import { TraceError } from './trace-error.js';

/** Exports finished traces; `export` resolves once the collector accepted them. */
export interface TraceExporter {
  /**
   * Traces still `running` are skipped: a turn is exported once, when it ends. Rejects with a
   * {@link TraceError} (`UNAVAILABLE`) when the collector did not take the spans.
   */
  export(trace: TurnTrace): Promise<void>;
  /** Flushes and releases the HTTP agent. */
  shutdown(): Promise<void>;
}

export interface TraceExporterOptions {
  /** Default 10 s. */
  readonly timeoutMillis?: number;
  /** Replaces the OTLP/HTTP exporter (tests, or another transport). */
  readonly exporter?: SpanExporter;
  /** Default `0.1.0`: the instrumentation scope version. */
  readonly version?: string;
}

type Env = Readonly<Record<string, string | undefined>>;

const EXPORT_SUCCESS = 0; // ExportResultCode.SUCCESS in @opentelemetry/core

/**
 * The OTLP trace endpoint per the OpenTelemetry exporter spec: the signal-specific variable is
 * used as is; the general one is a base URL that gets `/v1/traces` appended.
 */
export function otlpTracesUrl(env: Env): string | undefined {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!base) return undefined;
  return `${base.replace(/\/+$/, '')}/v1/traces`;
}

/** `OTEL_EXPORTER_OTLP_HEADERS` (`k1=v1,k2=v2`, values URL-encoded). */
export function otlpHeaders(env: Env): Record<string, string> {
  const headers: Record<string, string> = {};
  const raw = env.OTEL_EXPORTER_OTLP_TRACES_HEADERS ?? env.OTEL_EXPORTER_OTLP_HEADERS ?? '';
  for (const pair of raw.split(',')) {
    const at = pair.indexOf('=');
    if (at <= 0) continue;
    const key = pair.slice(0, at).trim();
    const value = pair.slice(at + 1).trim();
    try {
      headers[key] = decodeURIComponent(value);
    } catch {
      headers[key] = value;
    }
  }
  return headers;
}

/**
 * The trace exporter, or undefined when no OTLP endpoint is configured.
 *
 * @example
 * ```ts
 * const exporter = createTraceExporter(process.env);
 * recorder.finish('ok');
 * await exporter?.export(recorder.snapshot());
 * ```
 */
export function createTraceExporter(
  env: Env,
  options: TraceExporterOptions = {},
): TraceExporter | undefined {
  const url = otlpTracesUrl(env);
  if (!url) return undefined;
  const exporter: SpanExporter =
    options.exporter ??
    new OTLPTraceExporter({
      url,
      headers: otlpHeaders(env),
      timeoutMillis: options.timeoutMillis ?? 10_000,
    });
  const resource = staticResource({
    'service.name': env.OTEL_SERVICE_NAME?.trim() || ORCHESTRATOR_SERVICE_NAME,
  });
  const scope = { name: '@keel/orchestrator', version: options.version ?? '0.1.0' };

  return {
    export(trace) {
      if (trace.status === 'running' || trace.spans.length === 0) return Promise.resolve();
      const spans = toReadableSpans(trace, resource, scope);
      return new Promise<void>((resolve, reject) => {
        exporter.export(spans, (result) => {
          if (result.code === EXPORT_SUCCESS) resolve();
          else reject(new TraceError('OTLP trace export failed', { cause: result.error }));
        });
      });
    },
    shutdown: () => exporter.shutdown(),
  };
}

type Resource = ReadableSpan['resource'];
type Scope = ReadableSpan['instrumentationScope'];

/** A fixed resource: the exporter reads only `attributes` and `schemaUrl`. */
function staticResource(attributes: Attributes): Resource {
  const resource: Resource = {
    attributes,
    merge: (other) => (other ? staticResource({ ...attributes, ...other.attributes }) : resource),
    getRawAttributes: () => Object.entries(attributes),
  };
  return resource;
}

const OTEL_KIND: Readonly<Record<SpanKind, OtelSpanKind>> = {
  turn: OtelSpanKind.SERVER,
  step: OtelSpanKind.INTERNAL,
  'model-attempt': OtelSpanKind.CLIENT,
  'tool-call': OtelSpanKind.CLIENT,
  approval: OtelSpanKind.INTERNAL,
};

function hrTime(ms: number): HrTime {
  const whole = Math.floor(ms);
  const seconds = Math.floor(whole / 1_000);
  const nanos = (whole - seconds * 1_000) * 1_000_000 + Math.round((ms - whole) * 1_000_000);
  return [seconds, nanos];
}

/** Our spans as OpenTelemetry `ReadableSpan`s: same ids, parents, times and attributes. */
export function toReadableSpans(
  trace: TurnTrace,
  resource: Resource,
  instrumentationScope: Scope,
): ReadableSpan[] {
  const local = new Set(trace.spans.map((s) => s.spanId));
  const fallbackEnd = trace.endMs ?? trace.startMs;
  return trace.spans.map((span) => {
    const endMs = Math.max(span.endMs ?? fallbackEnd, span.startMs);
    const context: SpanContext = {
      traceId: trace.traceId,
      spanId: span.spanId,
      traceFlags: TraceFlags.SAMPLED,
    };
    const parent: SpanContext | undefined =
      span.parentSpanId === undefined
        ? undefined
        : {
            traceId: trace.traceId,
            spanId: span.parentSpanId,
            traceFlags: TraceFlags.SAMPLED,
            // A parent outside this trace came in on `traceparent`.
            isRemote: !local.has(span.parentSpanId),
          };
    const readable: ReadableSpan = {
      name: span.name,
      kind: OTEL_KIND[span.kind],
      spanContext: () => context,
      ...(parent ? { parentSpanContext: parent } : {}),
      startTime: hrTime(span.startMs),
      endTime: hrTime(endMs),
      duration: hrTime(endMs - span.startMs),
      status: otelStatus(span),
      attributes: otelAttributes(trace, span),
      links: [],
      events: [],
      ended: true,
      resource,
      instrumentationScope,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    };
    return readable;
  });
}

function otelStatus(span: TraceSpan): ReadableSpan['status'] {
  if (span.status === 'ok') return { code: SpanStatusCode.OK };
  if (span.status === 'error') {
    return span.error
      ? { code: SpanStatusCode.ERROR, message: `${span.error.code}: ${span.error.message}` }
      : { code: SpanStatusCode.ERROR };
  }
  return { code: SpanStatusCode.UNSET };
}

function otelAttributes(trace: TurnTrace, span: TraceSpan): Attributes {
  // Payloads (prompts, tool input/output) are not exported: they stay in Keel's own store.
  const attributes: Attributes = {
    [KEEL_ATTRIBUTES.SESSION_ID]: trace.sessionId,
    [KEEL_ATTRIBUTES.TURN_ID]: trace.turnId,
    'keel.span_kind': span.kind,
  };
  for (const [key, value] of Object.entries(span.attributes)) {
    attributes[key] = typeof value === 'object' ? [...value] : value;
  }
  if (span.error) {
    attributes[ERROR_TYPE] = span.error.code;
    attributes['keel.error.retryable'] = span.error.retryable;
  }
  return attributes;
}
