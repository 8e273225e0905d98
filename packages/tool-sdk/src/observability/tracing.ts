import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import type { Span } from '@opentelemetry/api';

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
  let context = ROOT_CONTEXT;
  const match = traceparent ? TRACEPARENT.exec(traceparent.trim()) : null;
  if (match && !/^0+$/.test(match[1]!) && !/^0+$/.test(match[2]!)) {
    context = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: match[1]!,
      spanId: match[2]!,
      traceFlags: parseInt(match[3]!, 16) & TraceFlags.SAMPLED,
      isRemote: true,
    });
  }
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
