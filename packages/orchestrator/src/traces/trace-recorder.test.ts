import { describe, expect, it } from 'vitest';
import {
  REDACTED,
  createTraceRecorder,
  parseTraceparent,
  randomTraceIds,
  type TraceIdGenerator,
  type TraceRecorderOptions,
} from './trace-recorder.js';
import { GEN_AI, GEN_AI_OPERATIONS, KEEL_ATTRIBUTES } from './genai-attributes.js';

function counterIds(): TraceIdGenerator {
  let n = 0;
  return {
    traceId: () => 'a'.repeat(32),
    spanId: () => (++n).toString(16).padStart(16, '0'),
  };
}

function fakeClock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const base = { sessionId: 's1', turnId: 't1', owner: { user: 'u1', tenant: 'acme' } };

function recorder(extra: Partial<TraceRecorderOptions> = {}) {
  const clock = fakeClock();
  const rec = createTraceRecorder({ ...base, now: clock.now, ids: counterIds(), ...extra });
  return { rec, clock };
}

describe('trace recorder', () => {
  it('records turn → step → tool call spans with parents, times, attributes and statuses', () => {
    const { rec, clock } = recorder();
    const turn = rec.startSpan('turn', 'turn');
    clock.advance(5);
    const step = rec.startSpan('step', 'chat claude', {
      parentSpanId: turn,
      attributes: {
        [GEN_AI.OPERATION_NAME]: GEN_AI_OPERATIONS.CHAT,
        [GEN_AI.REQUEST_MODEL]: 'claude',
      },
    });
    clock.advance(10);
    rec.setAttributes(step, {
      [GEN_AI.USAGE_INPUT_TOKENS]: 120,
      [GEN_AI.RESPONSE_FINISH_REASONS]: ['tool_calls'],
      [KEEL_ATTRIBUTES.COST_USD]: 0.002,
    });
    rec.endSpan(step, { status: 'ok' });
    const tool = rec.startSpan('tool-call', 'execute_tool orders__lookup', { parentSpanId: turn });
    clock.advance(7);
    rec.endSpan(tool, {
      status: 'error',
      error: { code: 'TIMEOUT', message: 'tool timed out', retryable: true },
    });
    clock.advance(1);
    rec.endSpan(turn, { status: 'ok' });
    rec.finish('ok');

    const trace = rec.snapshot();
    expect(trace).toMatchObject({
      traceId: 'a'.repeat(32),
      sessionId: 's1',
      turnId: 't1',
      owner: { user: 'u1', tenant: 'acme' },
      startMs: 1_000,
      endMs: 1_023,
      status: 'ok',
    });
    expect(trace.spans.map((s) => [s.spanId, s.parentSpanId, s.kind, s.startMs, s.endMs])).toEqual([
      [turn, undefined, 'turn', 1_000, 1_023],
      [step, turn, 'step', 1_005, 1_015],
      [tool, turn, 'tool-call', 1_015, 1_022],
    ]);
    expect(trace.spans[0]!.attributes).toEqual({
      [KEEL_ATTRIBUTES.SESSION_ID]: 's1',
      [KEEL_ATTRIBUTES.TURN_ID]: 't1',
    });
    expect(trace.spans[1]!.attributes).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'claude',
      'gen_ai.usage.input_tokens': 120,
      'gen_ai.response.finish_reasons': ['tool_calls'],
      'keel.cost_usd': 0.002,
    });
    expect(trace.spans[2]).toMatchObject({
      status: 'error',
      error: { code: 'TIMEOUT', message: 'tool timed out', retryable: true },
    });
  });

  it('keeps only code, message and retryable of an error (no details, no correlation id)', () => {
    const { rec } = recorder();
    const span = rec.startSpan('tool-call', 'x');
    rec.endSpan(span, {
      status: 'error',
      error: Object.assign(
        { code: 'INTERNAL', message: 'failed', retryable: false },
        { details: { secret: 'k' }, correlationId: 'c' },
      ),
    });
    expect(rec.snapshot().spans[0]!.error).toEqual({
      code: 'INTERNAL',
      message: 'failed',
      retryable: false,
    });
  });

  it('is running until finished; finish ends open spans and is final', () => {
    const { rec, clock } = recorder();
    const turn = rec.startSpan('turn', 'turn');
    expect(rec.snapshot()).toMatchObject({ status: 'running' });
    expect(rec.snapshot().endMs).toBeUndefined();
    expect(rec.snapshot().spans[0]!.endMs).toBeUndefined();
    clock.advance(30);
    rec.finish('interrupted');
    clock.advance(30);
    rec.finish('ok');
    rec.endSpan(turn, { status: 'ok' });
    const trace = rec.snapshot();
    expect(trace).toMatchObject({ status: 'interrupted', endMs: 1_030 });
    expect(trace.spans[0]).toMatchObject({ endMs: 1_030, status: 'unset' });
  });

  it('snapshots are copies: later changes do not alter an earlier snapshot', () => {
    const { rec } = recorder();
    const span = rec.startSpan('step', 'step', { attributes: { a: 1 } });
    const first = rec.snapshot();
    rec.setAttributes(span, { a: 2 });
    rec.setPayload(span, 'messages', ['m']);
    expect(first.spans[0]!.attributes).toEqual({ a: 1 });
    expect(first.spans[0]!.payload).toBeUndefined();
    expect(rec.snapshot().spans[0]!.attributes).toEqual({ a: 2 });
  });

  it('ignores calls about unknown spans instead of failing the turn', () => {
    const { rec } = recorder();
    expect(() => {
      rec.setAttributes('ffffffffffffffff', { a: 1 });
      rec.setPayload('ffffffffffffffff', 'k', 1);
      rec.endSpan('ffffffffffffffff', { status: 'ok' });
    }).not.toThrow();
    expect(rec.snapshot().spans).toEqual([]);
  });

  it('builds W3C traceparent values', () => {
    const { rec } = recorder();
    const span = rec.startSpan('tool-call', 'x');
    expect(rec.traceparent(span)).toBe(`00-${'a'.repeat(32)}-${span}-01`);
  });

  it('joins an incoming trace: same trace id, root spans parented to the remote span', () => {
    const parent = `00-${'b'.repeat(32)}-${'c'.repeat(16)}-01`;
    const { rec } = recorder({ parentTraceparent: parent });
    expect(rec.traceId).toBe('b'.repeat(32));
    const turn = rec.startSpan('turn', 'turn');
    const step = rec.startSpan('step', 'step', { parentSpanId: turn });
    const spans = rec.snapshot().spans;
    expect(spans[0]!.parentSpanId).toBe('c'.repeat(16));
    expect(spans[1]!.parentSpanId).toBe(turn);
    expect(step).not.toBe(turn);
  });

  it.each([
    'garbage',
    `00-${'0'.repeat(32)}-${'c'.repeat(16)}-01`,
    `00-${'b'.repeat(32)}-${'0'.repeat(16)}-01`,
    `ff-${'b'.repeat(32)}-${'c'.repeat(16)}-01`,
    `00-${'b'.repeat(31)}-${'c'.repeat(16)}-01`,
  ])('ignores a malformed incoming traceparent %s', (header) => {
    expect(parseTraceparent(header)).toBeUndefined();
    const { rec } = recorder({ parentTraceparent: header });
    expect(rec.traceId).toBe('a'.repeat(32));
    rec.startSpan('turn', 'turn');
    expect(rec.snapshot().spans[0]!.parentSpanId).toBeUndefined();
  });

  it('default ids are random W3C hex: 32-char trace ids, 16-char span ids, unique', () => {
    const traces = new Set(Array.from({ length: 1_000 }, () => randomTraceIds.traceId()));
    const spans = new Set(Array.from({ length: 1_000 }, () => randomTraceIds.spanId()));
    expect(traces.size).toBe(1_000);
    expect(spans.size).toBe(1_000);
    for (const id of traces) expect(id).toMatch(/^[0-9a-f]{32}$/);
    for (const id of spans) expect(id).toMatch(/^[0-9a-f]{16}$/);
    const rec = createTraceRecorder(base);
    expect(rec.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(rec.startSpan('turn', 'turn')).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('trace recorder redaction', () => {
  function recordTurn(redact?: { prompts: boolean; toolPayloads: boolean }) {
    const { rec } = recorder(redact ? { redact } : {});
    const turn = rec.startSpan('turn', 'turn');
    const step = rec.startSpan('step', 'chat', {
      parentSpanId: turn,
      payload: { system: 'You are a support agent', messages: [{ role: 'user', text: 'hi' }] },
    });
    rec.setPayload(step, 'response', 'Hello! Your order shipped.');
    rec.setPayload(step, 'finishReason', 'stop');
    const tool = rec.startSpan('tool-call', 'execute_tool orders__lookup', {
      parentSpanId: step,
      payload: { input: { orderId: 'o-1' } },
    });
    rec.setPayload(tool, 'output', { status: 'shipped' });
    rec.setPayload(tool, 'attempts', 2);
    const approval = rec.startSpan('approval', 'approve refund', {
      parentSpanId: turn,
      payload: { input: { amount: 10 } },
    });
    const spans = rec.snapshot().spans;
    return {
      step: spans.find((s) => s.spanId === step)!,
      tool: spans.find((s) => s.spanId === tool)!,
      approval: spans.find((s) => s.spanId === approval)!,
    };
  }

  it('stores payloads as given when redaction is off', () => {
    const { step, tool } = recordTurn();
    expect(step.payload).toEqual({
      system: 'You are a support agent',
      messages: [{ role: 'user', text: 'hi' }],
      response: 'Hello! Your order shipped.',
      finishReason: 'stop',
    });
    expect(tool.payload).toEqual({
      input: { orderId: 'o-1' },
      output: { status: 'shipped' },
      attempts: 2,
    });
  });

  it('redact.prompts: the step messages, system and response show "[redacted]"; tool payloads stay', () => {
    const { step, tool } = recordTurn({ prompts: true, toolPayloads: false });
    expect(step.payload).toEqual({
      system: REDACTED,
      messages: REDACTED,
      response: REDACTED,
      finishReason: 'stop',
    });
    expect(REDACTED).toBe('[redacted]');
    expect(tool.payload).toEqual({
      input: { orderId: 'o-1' },
      output: { status: 'shipped' },
      attempts: 2,
    });
  });

  it('redact.toolPayloads: tool input and output (and approval input) show "[redacted]"; prompts stay', () => {
    const { step, tool, approval } = recordTurn({ prompts: false, toolPayloads: true });
    expect(tool.payload).toEqual({ input: REDACTED, output: REDACTED, attempts: 2 });
    expect(approval.payload).toEqual({ input: REDACTED });
    expect(step.payload).toMatchObject({
      system: 'You are a support agent',
      response: 'Hello! Your order shipped.',
    });
  });

  it('redact.toolPayloads also hides tool data carried inside step prompts and responses', () => {
    const { rec } = recorder({ redact: { prompts: false, toolPayloads: true } });
    const step = rec.startSpan('step', 'chat', {
      payload: {
        system: 'sys',
        messages: [
          { role: 'user', content: [{ type: 'text', text: 'where is my order?' }] },
          {
            role: 'assistant',
            content: [
              {
                type: 'tool-call',
                toolCallId: 'c1',
                toolName: 'orders__lookup',
                input: { id: 'o-1' },
              },
            ],
          },
          {
            role: 'tool',
            content: [
              {
                type: 'tool-result',
                toolCallId: 'c1',
                toolName: 'orders__lookup',
                content: '{"status":"shipped"}',
                isError: false,
              },
            ],
          },
        ],
      },
    });
    rec.setPayload(step, 'response', {
      text: 'It shipped.',
      toolCalls: [{ id: 'c2', name: 'orders__refund', input: { amount: 5 } }],
    });
    const payload = rec.snapshot().spans[0]!.payload!;
    const json = JSON.stringify(payload);
    expect(json).not.toContain('o-1');
    expect(json).not.toContain('shipped\\"');
    expect(json).not.toContain('amount');
    // Prompts themselves stay, and so do the tool names and call ids.
    expect(json).toContain('where is my order?');
    expect(json).toContain('It shipped.');
    expect(json).toContain('orders__refund');
    expect(payload.response).toEqual({
      text: 'It shipped.',
      toolCalls: [{ id: 'c2', name: 'orders__refund', input: REDACTED }],
    });
  });

  it('both on: no prompt or tool payload text is left in the stored trace', () => {
    const { step, tool, approval } = recordTurn({ prompts: true, toolPayloads: true });
    const json = JSON.stringify([step, tool, approval]);
    for (const secret of ['support agent', '"hi"', 'shipped', 'o-1', '"amount"']) {
      expect(json).not.toContain(secret);
    }
  });

  it('caps each payload value: a longer one keeps its head and size', () => {
    const rec = createTraceRecorder({
      sessionId: 's',
      turnId: 't',
      owner: { user: 'u', tenant: 'x' },
      maxPayloadChars: 100,
    });
    const span = rec.startSpan('step', 'chat', { payload: { system: 'short' } });
    rec.setPayload(span, 'messages', ['x'.repeat(500)]);
    const payload = rec.snapshot().spans[0]?.payload as Record<string, unknown>;
    expect(payload.system).toBe('short');
    expect(payload.messages).toEqual({
      truncated: true,
      chars: 504,
      head: JSON.stringify(['x'.repeat(500)]).slice(0, 100),
    });
  });
});
