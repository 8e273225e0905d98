import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import type { Context, Span } from '@opentelemetry/api';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Start the span of one tool call, continuing a W3C `traceparent` when there is one. Parsed here
 * rather than through the global propagator, so it works whatever propagator the app installs.
 * A no-op unless the app registers an OpenTelemetry SDK.
 */
export function startCallSpan(
  tool: string,
  serverId: string,
  traceparent: string | undefined,
): Span {
  const context = contextFromTraceparent(traceparent);
  return trace.getTracer('@keel/tool-sdk').startSpan(
    `tools/call ${tool}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        'mcp.method.name': 'tools/call',
        'gen_ai.tool.name': tool,
        'keel.server.id': serverId,
      },
    },
    context,
  );
}

/** End a call span with its outcome (`ok` or a KeelError code). */
export function endCallSpan(span: Span, outcome: string, correlationId: string): void {
  span.setAttribute('keel.outcome', outcome);
  span.setAttribute('keel.correlation_id', correlationId);
  if (outcome !== 'ok' && outcome !== 'replayed')
    span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
  span.end();
}

/**
 * The OpenTelemetry context a W3C `traceparent` names (the root context when it is absent or
 * malformed). Parsed here rather than through the global propagator, so it works whatever
 * propagator the app installs.
 */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  const match = traceparent ? TRACEPARENT.exec(traceparent.trim()) : null;
  if (!match || /^0+$/.test(match[1]!) || /^0+$/.test(match[2]!)) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: match[1]!,
    spanId: match[2]!,
    traceFlags: parseInt(match[3]!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  });
}

/** The `traceparent` that continues a span on the next hop; undefined for a no-op span. */
export function traceparentOf(span: Span): string | undefined {
  const c = span.spanContext();
  if (!trace.isSpanContextValid(c)) return undefined;
  return `00-${c.traceId}-${c.spanId}-0${(c.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}
