import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import type { AgentConfig } from '../config/agent-config.js';
import type { ModelsConfig } from '../config/models-config.js';
import type {
  ToolCallContext,
  ToolCallOutcome,
  ToolGateway,
} from '../gateway-client/tool-gateway.js';
import { createMemoryMeter } from '../metering/memory-meter.js';
import type { ModelEvent, ModelRequest } from '../providers/model-provider.js';
import { ModelCallError } from '../providers/model-provider.js';
import { createMemorySessionStore } from '../sessions/memory-session-store.js';
import { createMemoryTurnStreamStore } from '../sessions/memory-turn-stream-store.js';
import type { SessionRecord } from '../sessions/session-store.js';
import { assembleUiMessage } from '../stream/assemble-ui-message.js';
import { uiMessageChunkSchema, type UiMessageChunk } from '../stream/ui-message-chunks.js';
import { createMemoryTraceStore } from '../traces/memory-trace-store.js';
import { createTraceRecorder } from '../traces/trace-recorder.js';
import { createMemorySummaryStore } from './summary-store.js';
import type { CallModel, TurnEnvironment } from './turn-deps.js';
import { runTurn, type PendingTurn, type TurnPlan } from './turn-runner.js';

type Script = Array<ModelEvent[] | ModelCallError>;

const usage = { inputTokens: 100, outputTokens: 20, cacheReadTokens: 0, cacheWriteTokens: 0 };
const finish = (reason: 'stop' | 'tool-calls' = 'stop'): ModelEvent => ({
  type: 'finish',
  finishReason: reason,
  usage,
});
const say = (text: string): ModelEvent[] => [
  { type: 'text-delta', text: text.slice(0, 3) },
  { type: 'text-delta', text: text.slice(3) },
  finish(),
];
const callTool = (id: string, name: string, input: unknown): ModelEvent[] => [
  { type: 'tool-call-start', toolCallId: id, toolName: name },
  { type: 'tool-call-delta', toolCallId: id, inputTextDelta: JSON.stringify(input) },
  { type: 'tool-call', toolCallId: id, toolName: name, input },
  finish('tool-calls'),
];

const models: ModelsConfig = {
  file: 'models.yaml',
  models: {
    smart: [
      {
        provider: 'anthropic',
        model: 'claude-test',
        prices: { inputPerMTok: 3, outputPerMTok: 15 },
        contextWindow: 200_000,
        maxOutputTokens: 1024,
      },
    ],
    fast: [
      {
        provider: 'openai',
        model: 'gpt-test',
        prices: { inputPerMTok: 0.1, outputPerMTok: 0.4 },
        contextWindow: 100_000,
      },
    ],
  },
};

function agentOf(overrides: Partial<AgentConfig> = {}): AgentConfig {
  return {
    name: 'support',
    description: '',
    prompt: 'You help {{customer}}.',
    model: 'smart',
    tools: ['orders__*'],
    limits: { maxSteps: 8, maxToolCalls: 20, maxTokensPerTurn: 4096 },
    context: { strategy: 'window' },
    approval: ['orders__refund*'],
    handlers: {},
    source: { file: 'agent.yaml', lines: {} },
    ...overrides,
  };
}

interface Harness {
  env: TurnEnvironment;
  requests: ModelRequest[];
  toolCalls: Array<{ name: string; input: unknown; ctx: ToolCallContext }>;
  chunks: UiMessageChunk[];
  ids: string[];
  session: SessionRecord;
  plan(overrides?: Partial<TurnPlan>): TurnPlan;
  setScript(script: Script): void;
  setTool(
    fn: (name: string, input: unknown, ctx: ToolCallContext) => Promise<ToolCallOutcome>,
  ): void;
  maxConcurrentTools(): number;
}

let h: Harness;
let counter = 0;

async function harness(): Promise<Harness> {
  const sessions = createMemorySessionStore();
  const streams = createMemoryTurnStreamStore();
  const meter = createMemoryMeter();
  const traces = createMemoryTraceStore();
  let script: Script = [];
  const requests: ModelRequest[] = [];
  const callModel: CallModel = (alias, request) => {
    requests.push(request);
    const next = script.shift();
    const entry = models.models[alias]?.[0];
    return {
      events: (async function* () {
        if (next === undefined) throw new Error('script exhausted');
        if (next instanceof ModelCallError) throw next;
        for (const e of next) {
          if (request.signal?.aborted) throw new Error('aborted');
          yield e;
          await Promise.resolve();
        }
      })(),
      served: () => entry,
      attempts: () => [
        {
          entryIndex: 0,
          provider: entry?.provider ?? 'anthropic',
          model: entry?.model ?? '',
          startMs: 0,
          endMs: 1,
        },
      ],
    };
  };
  const toolCalls: Harness['toolCalls'] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let toolFn = async (
    _n: string,
    input: unknown,
    _ctx: ToolCallContext,
  ): Promise<ToolCallOutcome> => ({
    ok: true,
    output: { echoed: input },
  });
  const gateway: ToolGateway = {
    listTools: async () => [
      { name: 'orders__get_order', description: 'Get an order', inputSchema: { type: 'object' } },
      { name: 'orders__refund_order', description: 'Refund', inputSchema: { type: 'object' } },
      { name: 'kb__search', description: 'Search', inputSchema: { type: 'object' } },
    ],
    callTool: async (name, input, ctx) => {
      toolCalls.push({ name, input, ctx });
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        await new Promise((r) => setImmediate(r));
        return await toolFn(name, input, ctx);
      } finally {
        inFlight -= 1;
      }
    },
    ping: async () => true,
    close: async () => undefined,
  };
  const env: TurnEnvironment = {
    sessions,
    streams,
    meter,
    traces,
    gateway,
    callModel,
    models,
    budgets: {},
    estimateTokens: (req) => Math.ceil(JSON.stringify(req.messages).length / 3) + 10,
    fitToWindow: (messages) => [...messages],
    newTrace: (input) => createTraceRecorder(input),
    logger: pino({ level: 'silent' }),
    now: () => Date.now(),
    newId: () => `id${(counter += 1)}`,
  };
  const owner = { user: 'alice', tenant: 'acme' };
  const session = await sessions.create({
    id: `s${(counter += 1)}`,
    agent: 'support',
    owner,
    input: { customer: 'Ada' },
  });
  const chunks: UiMessageChunk[] = [];
  const ids: string[] = [];
  return {
    env,
    requests,
    toolCalls,
    chunks,
    ids,
    session,
    setScript: (s) => {
      script = s;
    },
    setTool: (fn) => {
      toolFn = fn;
    },
    maxConcurrentTools: () => maxInFlight,
    plan: (overrides = {}) => ({
      session,
      agent: agentOf(),
      principal: { ...owner, via: 'jwt' },
      turnId: `t${(counter += 1)}`,
      userMessage: {
        id: `u${(counter += 1)}`,
        role: 'user',
        parts: [{ type: 'text', text: 'Where is order 7?', state: 'done' }],
      },
      signal: new AbortController().signal,
      onChunk: (chunk, id) => {
        chunks.push(chunk);
        ids.push(id);
      },
      ...overrides,
    }),
  };
}

async function run(plan: TurnPlan) {
  const lock = await h.env.sessions.acquireTurn(plan.session.id, plan.turnId, 30_000);
  expect(lock.ok).toBe(true);
  return runTurn(h.env, plan);
}

function types(): string[] {
  return h.chunks.map((c) => c.type);
}

beforeEach(async () => {
  h = await harness();
});

describe('runTurn', () => {
  it('streams a text answer in protocol order, stores both messages and releases the lock', async () => {
    h.setScript([say('Hello Ada')]);
    const plan = h.plan();
    const result = await run(plan);
    expect(result.status).toBe('ok');
    expect(types()).toEqual([
      'start',
      'start-step',
      'text-start',
      'text-delta',
      'text-delta',
      'text-end',
      'finish-step',
      'finish',
    ]);
    for (const chunk of h.chunks) expect(uiMessageChunkSchema.safeParse(chunk).success).toBe(true);
    expect(new Set(h.ids).size).toBe(h.ids.length);
    expect(h.requests[0]?.system).toBe('You help Ada.');
    const stored = await h.env.sessions.readMessages(h.session.id);
    expect(stored.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(stored[1]?.parts).toContainEqual({ type: 'text', text: 'Hello Ada', state: 'done' });
    expect(stored[1]?.metadata).toMatchObject({
      model: 'claude-test',
      usage: { inputTokens: 100, outputTokens: 20 },
      costUsd: (100 * 3 + 20 * 15) / 1e6,
      traceId: result.traceId,
    });
    expect(await h.env.sessions.activeTurn(h.session.id)).toBeUndefined();
    const replay = await h.env.streams.read(h.session.id, plan.turnId);
    expect(replay.ended).toBe(true);
    expect(replay.entries.map((e) => e.id)).toEqual(h.ids);
    const trace = await h.env.traces.get(result.traceId);
    expect(trace?.status).toBe('ok');
    expect(trace?.spans.map((s) => s.kind)).toEqual(expect.arrayContaining(['turn', 'step']));
    const report = await h.env.meter.usage('acme', 'alice');
    expect(report.total.calls).toBe(1);
  });

  it('runs a tool call through the gateway with user, tenant, session, idempotency key and traceparent', async () => {
    h.setScript([callTool('c1', 'orders__get_order', { id: 7 }), say('It shipped.')]);
    const result = await run(h.plan());
    expect(result.status).toBe('ok');
    expect(h.toolCalls).toHaveLength(1);
    const ctx = h.toolCalls[0]?.ctx;
    expect(ctx).toMatchObject({ user: 'alice', tenant: 'acme', sessionId: h.session.id });
    expect(ctx?.idempotencyKey).toBe(`${h.session.id}:c1`);
    expect(ctx?.traceparent).toMatch(new RegExp(`^00-${result.traceId}-[0-9a-f]{16}-01$`));
    expect(types()).toContain('tool-output-available');
    const second = h.requests[1];
    expect(second?.messages.at(-1)?.content).toEqual([
      {
        type: 'tool-result',
        toolCallId: 'c1',
        toolName: 'orders__get_order',
        content: JSON.stringify({ echoed: { id: 7 } }),
        isError: false,
      },
    ]);
    const message = assembleUiMessage(h.chunks);
    expect(message.parts.map((p) => p.type)).toEqual([
      'step-start',
      'tool-orders__get_order',
      'step-start',
      'text',
    ]);
  });

  it('a failed tool reaches the model as an error result with its KeelError, and the stream shows it', async () => {
    h.setTool(async () => ({
      ok: false,
      error: {
        code: 'ORDER_NOT_FOUND',
        message: 'No order 7',
        retryable: false,
        correlationId: 'c-9',
      },
    }));
    h.setScript([callTool('c1', 'orders__get_order', { id: 7 }), say('Sorry, no such order.')]);
    await run(h.plan());
    const errorChunk = h.chunks.find((c) => c.type === 'tool-output-error');
    expect(errorChunk).toBeDefined();
    expect(JSON.parse((errorChunk as { errorText: string }).errorText)).toMatchObject({
      code: 'ORDER_NOT_FOUND',
      retryable: false,
      correlationId: 'c-9',
    });
    expect(types()).not.toContain('tool-output-available');
    const result = h.requests[1]?.messages.at(-1)?.content[0];
    expect(result).toMatchObject({ type: 'tool-result', isError: true });
    expect(JSON.parse((result as { content: string }).content)).toMatchObject({
      code: 'ORDER_NOT_FOUND',
    });
  });

  it('relays tool progress as data-keel-progress parts (one per call, updated)', async () => {
    h.setTool(async (_name, _input, ctx) => {
      ctx.onProgress?.(1, 4, 'indexing');
      ctx.onProgress?.(4, 4, 'done');
      return { ok: true, output: { indexed: 4 } };
    });
    h.setScript([callTool('c1', 'orders__get_order', { id: 7 }), say('Indexed.')]);
    await run(h.plan());
    const progress = h.chunks.filter((c) => c.type === 'data-keel-progress');
    expect(progress).toEqual([
      {
        type: 'data-keel-progress',
        id: 'progress-c1',
        data: { toolCallId: 'c1', progress: 1, total: 4, message: 'indexing' },
      },
      {
        type: 'data-keel-progress',
        id: 'progress-c1',
        data: { toolCallId: 'c1', progress: 4, total: 4, message: 'done' },
      },
    ]);
    const types = h.chunks.map((c) => c.type);
    expect(types.indexOf('data-keel-progress')).toBeLessThan(
      types.indexOf('tool-output-available'),
    );
    expect(
      assembleUiMessage(h.chunks).parts.filter((p) => p.type === 'data-keel-progress'),
    ).toHaveLength(1);
  });

  it('runs several tool calls of one step in parallel', async () => {
    h.setScript([
      [
        { type: 'tool-call', toolCallId: 'a', toolName: 'orders__get_order', input: { id: 1 } },
        { type: 'tool-call', toolCallId: 'b', toolName: 'orders__get_order', input: { id: 2 } },
        { type: 'tool-call', toolCallId: 'c', toolName: 'orders__get_order', input: { id: 3 } },
        finish('tool-calls'),
      ],
      say('Done.'),
    ]);
    await run(h.plan());
    expect(h.toolCalls).toHaveLength(3);
    expect(h.maxConcurrentTools()).toBe(3);
  });

  it('a tool the agent may not use is never dispatched and comes back as an error', async () => {
    h.setScript([callTool('c1', 'kb__search', { q: 'x' }), say('ok')]);
    await run(h.plan());
    expect(h.toolCalls).toHaveLength(0);
    const errorChunk = h.chunks.find((c) => c.type === 'tool-output-error') as {
      errorText: string;
    };
    expect(JSON.parse(errorChunk.errorText).code).toBe('NOT_FOUND');
  });

  it('pauses for approval, then continues with the approved call', async () => {
    h.setScript([callTool('r1', 'orders__refund_order', { id: 7 })]);
    const first = await run(h.plan());
    expect(first.status).toBe('paused');
    expect(h.toolCalls).toHaveLength(0);
    const approval = h.chunks.find((c) => c.type === 'data-keel-approval');
    expect(approval).toMatchObject({
      data: { toolCallId: 'r1', toolName: 'orders__refund_order', input: { id: 7 } },
    });
    expect(types().at(-1)).toBe('finish');
    const pending = (await h.env.sessions.takePending(h.session.id)) as PendingTurn;
    expect(pending.calls[0]).toMatchObject({ toolCallId: 'r1', needsApproval: true });

    h.chunks.length = 0;
    h.setScript([say('Refunded.')]);
    const second = await run(
      h.plan({
        userMessage: undefined,
        continues: { ...pending, decisions: { r1: { approved: true } } },
      }),
    );
    expect(second.status).toBe('ok');
    expect(second.assistantMessageId).toBe(first.assistantMessageId);
    expect(h.toolCalls.map((c) => c.name)).toEqual(['orders__refund_order']);
    expect(types()).toContain('tool-output-available');
    const stored = await h.env.sessions.readMessages(h.session.id);
    expect(stored.map((m) => m.role)).toEqual(['user', 'assistant']);
    const parts = stored[1]?.parts ?? [];
    expect(parts.filter((p) => p.type === 'tool-orders__refund_order')).toEqual([
      expect.objectContaining({ state: 'output-available' }),
    ]);
    expect(parts.at(-1)).toMatchObject({ type: 'text', text: 'Refunded.' });
  });

  it('a declined call reaches the model as a FORBIDDEN error result', async () => {
    h.setScript([callTool('r1', 'orders__refund_order', { id: 7 })]);
    await run(h.plan());
    const pending = (await h.env.sessions.takePending(h.session.id)) as PendingTurn;
    h.setScript([say('I will not refund it.')]);
    await run(
      h.plan({
        userMessage: undefined,
        continues: { ...pending, decisions: { r1: { approved: false, reason: 'too late' } } },
      }),
    );
    expect(h.toolCalls).toHaveLength(0);
    const toolResult = h.requests.at(-1)?.messages.at(-1)?.content[0] as {
      content: string;
      isError: boolean;
    };
    expect(toolResult.isError).toBe(true);
    expect(JSON.parse(toolResult.content)).toMatchObject({ code: 'FORBIDDEN' });
  });

  it('S31 the loop breaker ends a turn that repeats one call with LIMIT_EXCEEDED', async () => {
    const loop = Array.from({ length: 6 }, (_, i) =>
      callTool(`c${i}`, 'orders__get_order', { id: 7 }),
    );
    h.setScript(loop);
    const result = await run(h.plan());
    expect(result.status).toBe('limited');
    expect(result.error).toMatchObject({
      code: 'LIMIT_EXCEEDED',
      details: { limit: 'loopBreaker' },
    });
    expect(h.toolCalls).toHaveLength(3);
    expect(types()).toContain('data-keel-limit');
    const error = h.chunks.find((c) => c.type === 'error') as { errorText: string };
    expect(JSON.parse(error.errorText)).toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect(types().at(-1)).toBe('finish');
  });

  it('maxSteps ends the turn with LIMIT_EXCEEDED', async () => {
    h.setScript([
      callTool('a', 'orders__get_order', { id: 1 }),
      callTool('b', 'orders__get_order', { id: 2 }),
    ]);
    const result = await run(
      h.plan({
        agent: agentOf({ limits: { maxSteps: 2, maxToolCalls: 20, maxTokensPerTurn: 4096 } }),
      }),
    );
    expect(result.error).toMatchObject({ code: 'LIMIT_EXCEEDED', details: { limit: 'maxSteps' } });
    expect(h.requests).toHaveLength(2);
  });

  it('a session budget that cannot cover the reservation ends the turn with BUDGET_EXCEEDED before any model call', async () => {
    h.setScript([say('too expensive')]);
    const result = await run(
      h.plan({
        agent: agentOf({
          limits: { maxSteps: 8, maxToolCalls: 20, maxTokensPerTurn: 4096, budgetUsd: 0.0001 },
        }),
      }),
    );
    expect(result.status).toBe('limited');
    expect(result.error).toMatchObject({ code: 'BUDGET_EXCEEDED', details: { budget: 'session' } });
    expect(h.requests).toHaveLength(0);
    expect(types()).toEqual(['start', 'data-keel-limit', 'error', 'finish']);
    const trace = await h.env.traces.get(result.traceId);
    expect(trace?.spans.some((s) => s.error?.code === 'BUDGET_EXCEEDED')).toBe(true);
  });

  it('a provider failure ends the turn with a structured error chunk', async () => {
    h.setScript([
      new ModelCallError(
        { code: 'UNAVAILABLE', message: 'All models failed', retryable: true, correlationId: '' },
        true,
        503,
      ),
    ]);
    const result = await run(h.plan());
    expect(result.status).toBe('error');
    const error = h.chunks.find((c) => c.type === 'error') as { errorText: string };
    expect(JSON.parse(error.errorText)).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect(await h.env.sessions.activeTurn(h.session.id)).toBeUndefined();
  });

  it('stop keeps the partial answer', async () => {
    const controller = new AbortController();
    h.setScript([
      [
        { type: 'text-delta', text: 'Part' },
        { type: 'text-delta', text: 'ial' },
        { type: 'text-delta', text: ' never' },
        finish(),
      ],
    ]);
    const plan = h.plan({
      signal: controller.signal,
      onChunk: (chunk) => {
        h.chunks.push(chunk);
        if (chunk.type === 'text-delta' && chunk.delta === 'ial') controller.abort();
      },
    });
    const result = await run(plan);
    expect(result.status).toBe('stopped');
    const stored = await h.env.sessions.readMessages(h.session.id);
    const text = stored[1]?.parts.find((p) => p.type === 'text') as { text: string };
    expect(text.text.startsWith('Partial')).toBe(true);
    expect(types().at(-1)).toBe('finish');
  });

  it('a router model picks the handler whose model and tools answer', async () => {
    const agent = agentOf({
      handlers: {
        faq: { description: 'General questions', model: 'fast', tools: ['kb__*'] },
        orders: { description: 'Orders', model: 'smart' },
      },
      router: { model: 'fast', prompt: 'Pick one.' },
    });
    h.setScript([say('faq'), say('Our hours are 9-5.')]);
    await run(h.plan({ agent }));
    expect(h.requests).toHaveLength(2);
    expect(h.requests[1]?.tools.map((t) => t.name)).toEqual(['kb__search']);
    const stored = await h.env.sessions.readMessages(h.session.id);
    expect(stored[1]?.metadata).toMatchObject({ model: 'gpt-test' });
  });

  it('when the stream store fails mid-turn, the live client still gets the error and the finish', async () => {
    const real = h.env.streams;
    let appends = 0;
    const failing = {
      ...real,
      append: async (sessionId: string, turnId: string, data: string) => {
        appends += 1;
        if (appends > 3) {
          throw Object.assign(new Error('redis down'), {
            toKeelError: (correlationId: string) => ({
              code: 'UNAVAILABLE',
              message: 'session store unavailable (append)',
              retryable: true,
              correlationId,
            }),
          });
        }
        return real.append(sessionId, turnId, data);
      },
    };
    h = { ...h, env: { ...h.env, streams: failing } };
    h.setScript([say('Hello Ada')]);
    const result = await run(h.plan());
    expect(result.status).toBe('error');
    expect(result.error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect(types().slice(-2)).toEqual(['error', 'finish']);
    expect(await h.env.sessions.activeTurn(h.session.id)).toBeUndefined();
  });

  it('context strategy summary: what the window leaves out is summarised by the summary model, then extended', async () => {
    const summaries = createMemorySummaryStore();
    h = {
      ...h,
      env: { ...h.env, summaries, fitToWindow: (messages) => messages.slice(-1) },
    };
    const agent = agentOf({ context: { strategy: 'summary', summaryModel: 'fast' } });
    const text = (t: string) => [{ type: 'text' as const, text: t, state: 'done' as const }];
    await h.env.sessions.appendMessage(h.session.id, {
      id: 'old-u',
      role: 'user',
      parts: text('My name is Ada'),
    });
    await h.env.sessions.appendMessage(h.session.id, {
      id: 'old-a',
      role: 'assistant',
      parts: text('Hi Ada'),
    });
    h.setScript([say('Ada introduced herself.'), say('Order 7 shipped.')]);
    await run(h.plan({ agent }));
    expect(h.requests[0]?.system).toContain('Summarise');
    expect(JSON.stringify(h.requests[0]?.messages)).toContain('My name is Ada');
    const main = h.requests[1];
    expect(main?.messages).toHaveLength(1);
    expect(main?.messages[0]?.content[0]).toEqual({
      type: 'text',
      text: '(Summary of the earlier conversation: Ada introduced herself.)',
    });
    expect(await summaries.get(h.session.id)).toEqual({
      covered: 2,
      text: 'Ada introduced herself.',
    });
    const stored = await h.env.sessions.readMessages(h.session.id);
    expect(stored).toHaveLength(4); // the stored history is never cut

    h.setScript([say('Ada asked about order 7; it shipped.'), say('You are welcome.')]);
    await run(h.plan({ agent }));
    const extend = JSON.stringify(h.requests[2]?.messages);
    expect(extend).toContain('Summary so far:\\nAda introduced herself.');
    expect(extend).not.toContain('My name is Ada');
    expect((await summaries.get(h.session.id))?.covered).toBe(4);
  });

  it('regenerate replaces the last answer', async () => {
    h.setScript([say('First answer'), say('Second answer')]);
    await run(h.plan());
    await run(
      h.plan({
        regenerate: true,
        userMessage: (await h.env.sessions.readMessages(h.session.id))[0],
      }),
    );
    const stored = await h.env.sessions.readMessages(h.session.id);
    expect(stored.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(stored[1]?.parts).toContainEqual({ type: 'text', text: 'Second answer', state: 'done' });
  });
});
