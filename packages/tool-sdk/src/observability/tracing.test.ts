import { afterAll, describe, expect, it } from 'vitest';
import { trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { z } from 'zod';
import { pino } from 'pino';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from '../http/tool-server.js';
import { createTestClient } from '../test-kit/index.js';

const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
);
afterAll(() => trace.disable());

describe('tracing', () => {
  it('continues traceparent from params._meta into a span per call', async () => {
    const tool = defineTool({
      name: 'hello',
      description: 'd',
      input: z.object({}),
      handler: () => 'hi',
    });
    const server = createToolServer({
      id: 'traced',
      tools: [tool],
      auth: 'none',
      logger: pino({ level: 'silent' }),
    });
    const client = createTestClient(server);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    await client.request('tools/call', {
      name: 'hello',
      arguments: {},
      _meta: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    });
    const span = exporter.getFinishedSpans().find((s) => s.name === 'tools/call hello');
    expect(span?.spanContext().traceId).toBe(traceId);
    expect(span?.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(span?.attributes['keel.outcome']).toBe('ok');
  });
});
