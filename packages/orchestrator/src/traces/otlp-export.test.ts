import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createTraceExporter, otlpHeaders, otlpTracesUrl } from './otlp-export.js';
import { createTraceRecorder, type TraceIdGenerator } from './trace-recorder.js';
import { TraceError } from './trace-error.js';
import { GEN_AI, GEN_AI_OPERATIONS, KEEL_ATTRIBUTES } from './genai-attributes.js';

interface Received {
  readonly path: string;
  readonly contentType: string | undefined;
  readonly headers: IncomingMessage['headers'];
  readonly body: OtlpRequest;
}

interface OtlpKeyValue {
  key: string;
  value: {
    stringValue?: string;
    intValue?: number | string;
    doubleValue?: number;
    boolValue?: boolean;
    arrayValue?: { values: { stringValue?: string }[] };
  };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpKeyValue[];
  status: { code?: number; message?: string };
}
interface OtlpRequest {
  resourceSpans: {
    resource: { attributes: OtlpKeyValue[] };
    scopeSpans: { scope: { name: string }; spans: OtlpSpan[] }[];
  }[];
}

/** A loopback OTLP/HTTP collector that records each POST. */
async function startCollector(status = 200) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        path: req.url ?? '',
        contentType: req.headers['content-type'],
        headers: req.headers,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as OtlpRequest,
      });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function ids(): TraceIdGenerator {
  let n = 0;
  return {
    traceId: () => '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: () => (0x1000 + ++n).toString(16).padStart(16, '0'),
  };
}

function recordTurn() {
  let t = 1_700_000_000_000;
  const rec = createTraceRecorder({
    sessionId: 'sess-1',
    turnId: 'turn-1',
    owner: { user: 'u', tenant: 'acme' },
    now: () => (t += 10),
    ids: ids(),
    redact: { prompts: true, toolPayloads: true },
  });
  const turn = rec.startSpan('turn', 'turn');
  const step = rec.startSpan('step', 'chat claude-sonnet', {
    parentSpanId: turn,
    attributes: {
      [GEN_AI.OPERATION_NAME]: GEN_AI_OPERATIONS.CHAT,
      [GEN_AI.PROVIDER_NAME]: 'anthropic',
      [GEN_AI.REQUEST_MODEL]: 'claude-sonnet',
      [GEN_AI.USAGE_INPUT_TOKENS]: 120,
      [GEN_AI.RESPONSE_FINISH_REASONS]: ['tool_use'],
      [KEEL_ATTRIBUTES.COST_USD]: 0.0125,
    },
    payload: { messages: 'secret prompt' },
  });
  const tool = rec.startSpan('tool-call', 'execute_tool orders__lookup', {
    parentSpanId: step,
    attributes: {
      [GEN_AI.OPERATION_NAME]: GEN_AI_OPERATIONS.EXECUTE_TOOL,
      [GEN_AI.TOOL_NAME]: 'orders__lookup',
    },
  });
  rec.endSpan(tool, {
    status: 'error',
    error: { code: 'TIMEOUT', message: 'tool timed out', retryable: true },
  });
  rec.endSpan(step, { status: 'ok' });
  rec.endSpan(turn, { status: 'ok' });
  rec.finish('ok');
  return { trace: rec.snapshot(), turn, step, tool };
}

const attr = (span: OtlpSpan, key: string) => span.attributes.find((a) => a.key === key)?.value;

describe('OTLP export', () => {
  it('is off without an endpoint', () => {
    expect(createTraceExporter({})).toBeUndefined();
    expect(createTraceExporter({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' })).toBeUndefined();
  });

  it('resolves the traces URL and headers as the OTel exporter spec says', () => {
    expect(otlpTracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' })).toBe(
      'http://c:4318/v1/traces',
    );
    expect(
      otlpTracesUrl({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:1/custom',
      }),
    ).toBe('http://t:1/custom');
    expect(otlpHeaders({ OTEL_EXPORTER_OTLP_HEADERS: 'api-key=a%20b, x=1,broken' })).toEqual({
      'api-key': 'a b',
      x: '1',
    });
  });

  it('posts a finished turn to <endpoint>/v1/traces as OTLP JSON with the same ids, parents, times and GenAI attributes', async () => {
    const collector = await startCollector();
    cleanups.push(collector.close);
    const exporter = createTraceExporter({
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant-key=k1',
    })!;
    cleanups.push(() => exporter.shutdown());
    const { trace, turn, step, tool } = recordTurn();

    await exporter.export(trace);

    expect(collector.received).toHaveLength(1);
    const [req] = collector.received;
    expect(req!.path).toBe('/v1/traces');
    expect(req!.contentType).toContain('application/json');
    expect(req!.headers['x-tenant-key']).toBe('k1');
    const resourceSpans = req!.body.resourceSpans[0]!;
    expect(
      attr({ attributes: resourceSpans.resource.attributes } as OtlpSpan, 'service.name'),
    ).toEqual({
      stringValue: 'keel-orchestrator',
    });
    const spans = resourceSpans.scopeSpans.flatMap((s) => s.spans);
    expect(spans.map((s) => s.name).sort()).toEqual(
      ['chat claude-sonnet', 'execute_tool orders__lookup', 'turn'].sort(),
    );
    for (const s of spans) expect(s.traceId).toBe(trace.traceId);
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    expect([...byId.keys()].sort()).toEqual([turn, step, tool].sort());
    expect(byId.get(turn)!.parentSpanId ?? '').toBe('');
    expect(byId.get(step)!.parentSpanId).toBe(turn);
    expect(byId.get(tool)!.parentSpanId).toBe(step);

    const stepSpan = trace.spans.find((s) => s.spanId === step)!;
    const exportedStep = byId.get(step)!;
    expect(BigInt(exportedStep.startTimeUnixNano)).toBe(BigInt(stepSpan.startMs) * 1_000_000n);
    expect(BigInt(exportedStep.endTimeUnixNano)).toBe(BigInt(stepSpan.endMs!) * 1_000_000n);
    expect(attr(exportedStep, 'gen_ai.request.model')).toEqual({ stringValue: 'claude-sonnet' });
    expect(attr(exportedStep, 'gen_ai.operation.name')).toEqual({ stringValue: 'chat' });
    expect(Number(attr(exportedStep, 'gen_ai.usage.input_tokens')!.intValue)).toBe(120);
    expect(attr(exportedStep, 'keel.cost_usd')).toEqual({ doubleValue: 0.0125 });
    expect(attr(exportedStep, 'gen_ai.response.finish_reasons')).toEqual({
      arrayValue: { values: [{ stringValue: 'tool_use' }] },
    });
    expect(attr(exportedStep, 'keel.session_id')).toEqual({ stringValue: 'sess-1' });

    const exportedTool = byId.get(tool)!;
    expect(exportedTool.status).toMatchObject({ code: 2, message: 'TIMEOUT: tool timed out' });
    expect(attr(exportedTool, 'error.type')).toEqual({ stringValue: 'TIMEOUT' });
    expect(attr(exportedTool, 'gen_ai.tool.name')).toEqual({ stringValue: 'orders__lookup' });
    expect(exportedStep.status.code).toBe(1);

    // Payloads never leave the process over OTLP.
    expect(JSON.stringify(req!.body)).not.toContain('secret prompt');
    expect(JSON.stringify(req!.body)).not.toContain('[redacted]');
  });

  it('marks a parent that came in on traceparent as remote and keeps its id', async () => {
    const collector = await startCollector();
    cleanups.push(collector.close);
    const exporter = createTraceExporter({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url })!;
    cleanups.push(() => exporter.shutdown());
    const rec = createTraceRecorder({
      sessionId: 's',
      turnId: 't',
      owner: { user: 'u', tenant: 't' },
      parentTraceparent: `00-${'b'.repeat(32)}-${'c'.repeat(16)}-01`,
    });
    rec.startSpan('turn', 'turn');
    rec.finish('ok');
    await exporter.export(rec.snapshot());
    const span = collector.received[0]!.body.resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    expect(span.traceId).toBe('b'.repeat(32));
    expect(span.parentSpanId).toBe('c'.repeat(16));
  });

  it('skips a running trace', async () => {
    const collector = await startCollector();
    cleanups.push(collector.close);
    const exporter = createTraceExporter({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url })!;
    cleanups.push(() => exporter.shutdown());
    const rec = createTraceRecorder({
      sessionId: 's',
      turnId: 't',
      owner: { user: 'u', tenant: 't' },
    });
    rec.startSpan('turn', 'turn');
    await exporter.export(rec.snapshot());
    expect(collector.received).toHaveLength(0);
  });

  it('rejects with a retryable UNAVAILABLE error when the collector refuses the spans', async () => {
    const collector = await startCollector(400);
    cleanups.push(collector.close);
    const exporter = createTraceExporter({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url })!;
    cleanups.push(() => exporter.shutdown());
    const failure = await exporter.export(recordTurn().trace).catch((e: unknown) => e);
    expect(TraceError.isInstance(failure)).toBe(true);
    expect(failure).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect((failure as TraceError).toKeelError('corr-1')).toEqual({
      code: 'UNAVAILABLE',
      message: 'OTLP trace export failed',
      retryable: true,
      correlationId: 'corr-1',
    });
    expect(collector.received).toHaveLength(1);
  });
});
