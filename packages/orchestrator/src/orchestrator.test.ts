/**
 * The orchestrator's HTTP API over real loopback HTTP, with the real provider SDKs against the
 * local model server, in-memory stores, and an in-process tool gateway.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuthenticator } from './auth/create-authenticator.js';
import type { AgentConfig } from './config/agent-config.js';
import type { ModelsConfig } from './config/models-config.js';
import type { ToolGateway } from './gateway-client/tool-gateway.js';
import { createOrchestrator, type Orchestrator, type OrchestratorOptions } from './orchestrator.js';
import {
  createLocalModelServer,
  type LocalModelReply,
  type LocalModelServer,
} from './testing/local-model-server.js';
import { assembleUiMessage } from './stream/assemble-ui-message.js';
import { uiMessageChunkSchema, type UiMessageChunk } from './stream/ui-message-chunks.js';

interface Frame {
  id?: string;
  data: string;
}

function parseFrames(text: string): Frame[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '' && !block.startsWith(':'))
    .map((block) => {
      const frame: Frame = { data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) frame.id = line.slice(4);
        else if (line.startsWith('data: ')) frame.data = line.slice(6);
      }
      return frame;
    });
}

function chunksOf(frames: Frame[]): UiMessageChunk[] {
  return frames.filter((f) => f.data !== '[DONE]').map((f) => JSON.parse(f.data) as UiMessageChunk);
}

const agent = (overrides: Partial<AgentConfig> = {}): AgentConfig => ({
  name: 'support',
  description: '',
  prompt: 'You are a support agent.',
  model: 'smart',
  tools: ['orders__*'],
  limits: { maxSteps: 5, maxToolCalls: 10, maxTokensPerTurn: 4096 },
  context: { strategy: 'window' },
  approval: ['orders__refund*'],
  handlers: {},
  source: { file: 'agent.yaml', lines: {} },
  ...overrides,
});

let model: LocalModelServer;
let orchestrator: Orchestrator;
let base: string;
let replies: Array<LocalModelReply | (() => Promise<LocalModelReply>)>;
const toolCalls: Array<{ name: string; input: unknown }> = [];

const gateway: ToolGateway = {
  listTools: async () => [
    { name: 'orders__get_order', description: 'Get an order', inputSchema: { type: 'object' } },
    { name: 'orders__refund_order', description: 'Refund', inputSchema: { type: 'object' } },
  ],
  callTool: async (name, input) => {
    toolCalls.push({ name, input });
    if (name === 'orders__get_order') return { ok: true, output: { id: 7, status: 'shipped' } };
    return { ok: true, output: { refunded: true } };
  },
  ping: async () => true,
  close: async () => undefined,
};

/** Builds the orchestrator under test (the local model server behind the `smart` alias). */
async function start(extra: Partial<OrchestratorOptions>): Promise<void> {
  const models: ModelsConfig = {
    file: 'models.yaml',
    models: {
      smart: [
        {
          provider: 'anthropic',
          model: 'claude-local',
          baseUrl: model.anthropicBaseUrl,
          prices: { inputPerMTok: 3, outputPerMTok: 15 },
          contextWindow: 200_000,
          maxOutputTokens: 1024,
        },
      ],
    },
  };
  orchestrator = createOrchestrator({
    agents: [agent()],
    models,
    gateway,
    authenticator: createAuthenticator({ dev: { user: 'dev-user', tenant: 'dev' } }),
    logger: pino({ level: 'silent' }),
    env: {},
    heartbeatMs: 0,
    ...extra,
  });
  base = (await orchestrator.listen(0)).url;
}

/** Replaces the orchestrator of beforeEach with one built from `extra` options. */
async function rebuild(extra: Partial<OrchestratorOptions>): Promise<void> {
  await orchestrator.close(1_000);
  await start(extra);
}

beforeEach(async () => {
  replies = [];
  toolCalls.length = 0;
  model = await createLocalModelServer({
    script: async () => {
      const next = replies.shift();
      if (next === undefined) return { text: 'No script left.' };
      return typeof next === 'function' ? next() : next;
    },
  });
  await start({});
});

afterEach(async () => {
  await orchestrator.close(1_000);
  await model.close();
});

const as = (user: string) => ({ 'x-keel-user': user, 'content-type': 'application/json' });

async function createSession(user = 'alice'): Promise<string> {
  const res = await fetch(`${base}/v1/sessions`, {
    method: 'POST',
    headers: as(user),
    body: JSON.stringify({ agent: 'support' }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

const userMessage = (id: string, text: string) => ({
  id,
  role: 'user',
  parts: [{ type: 'text', text }],
});

async function send(
  sessionId: string,
  text: string,
  user = 'alice',
  id = `m-${text.length}-${Math.random()}`,
) {
  return fetch(`${base}/v1/sessions/${sessionId}/messages`, {
    method: 'POST',
    headers: as(user),
    body: JSON.stringify(userMessage(id, text)),
  });
}

describe('wiring of the composition root', () => {
  it('exports every finished turn over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set', async () => {
    const received: string[] = [];
    const collector = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.url === '/v1/traces') received.push(body);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const port = (collector.address() as AddressInfo).port;
    try {
      await rebuild({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` } });
      replies.push({ text: 'Exported.' });
      const id = await createSession();
      const chunks = chunksOf(parseFrames(await (await send(id, 'export me')).text()));
      const traceId = (assembleUiMessage(chunks).metadata as { traceId: string }).traceId;
      await waitFor(async () => received.some((b) => b.includes(traceId)));
      expect(received.join('')).toContain('gen_ai.request.model');
    } finally {
      collector.close();
    }
  });

  it('redacts prompts and tool payloads in stored traces when configured', async () => {
    await rebuild({ redaction: { prompts: true, toolPayloads: true } });
    replies.push({ toolCalls: [{ name: 'orders__get_order', arguments: { id: 7 } }] });
    replies.push({ text: 'Secret answer.' });
    const id = await createSession();
    await (await send(id, 'my secret question')).text();
    const list = (await (
      await fetch(`${base}/v1/sessions/${id}/traces`, { headers: as('alice') })
    ).json()) as {
      traces: Array<{ traceId: string }>;
    };
    const trace = await (
      await fetch(`${base}/v1/traces/${list.traces[0]?.traceId}`, { headers: as('alice') })
    ).text();
    expect(trace).not.toContain('my secret question');
    expect(trace).not.toContain('shipped');
    expect(trace).toContain('[redacted]');
  });

  it('graceful shutdown lets running turns finish for the grace period, then stops them as interrupted, partial answer kept', async () => {
    replies.push({
      toolCalls: [{ name: 'orders__get_order', arguments: { id: 1 } }],
      text: 'Looking it up.',
    });
    replies.push(() => new Promise<LocalModelReply>(() => undefined)); // never answers
    const id = await createSession();
    const res = send(id, 'slow one');
    await waitFor(async () => toolCalls.length === 1);
    await new Promise((r) => setTimeout(r, 50));
    const env = orchestrator.env;
    await orchestrator.close(200);
    await (await res).text().catch(() => '');
    const stored = await env.sessions.readMessages(id);
    const answer = stored.at(-1) as unknown as {
      role: string;
      parts: Array<{ type: string; text?: string }>;
    };
    expect(answer.role).toBe('assistant');
    expect(answer.parts.some((p) => p.text === 'Looking it up.')).toBe(true);
    expect(await env.sessions.activeTurn(id)).toBeUndefined();
    expect(await orchestrator.metrics.render()).toContain(
      'keel_orchestrator_turns_total{status="interrupted"} 1',
    );
    // afterEach closes it again: give it a fresh one.
    await rebuild({});
  });
});

describe('S29 budgets across concurrent turns', () => {
  it('50 concurrent turns when the user-day budget covers ~10: spend ≤ budget + one reservation, no model call after exhaustion', async () => {
    const budget = 0.16;
    await rebuild({ budgets: { userDayUsd: budget } });
    for (let i = 0; i < 60; i += 1) {
      replies.push({ text: 'A costly answer.', usage: { inputTokens: 100, outputTokens: 1000 } });
    }
    const sessions = await Promise.all(Array.from({ length: 50 }, () => createSession('spender')));
    const outcomes = await Promise.all(
      sessions.map(async (id, i) => {
        const chunks = chunksOf(
          parseFrames(await (await send(id, `question ${i}`, 'spender')).text()),
        );
        const error = chunks.find((c) => c.type === 'error') as { errorText: string } | undefined;
        return error === undefined ? 'ok' : (JSON.parse(error.errorText) as { code: string }).code;
      }),
    );
    const served = outcomes.filter((o) => o === 'ok').length;
    const refused = outcomes.filter((o) => o === 'BUDGET_EXCEEDED').length;
    expect(served + refused).toBe(50);
    expect(served).toBeGreaterThanOrEqual(5);
    expect(served).toBeLessThanOrEqual(11);
    expect(model.requests).toHaveLength(served);
    const usage = (await (await fetch(`${base}/v1/usage`, { headers: as('spender') })).json()) as {
      total: { costUsd: number; calls: number };
    };
    // One reservation here: ~1,000 input tokens estimated x $3/M + 1,024 x $15/M ≈ $0.0157.
    expect(usage.total.costUsd).toBeLessThanOrEqual(budget + 0.016);
    expect(usage.total.calls).toBe(served);
    // Exhausted: the next turn is refused before any model call.
    const before = model.requests.length;
    const last = chunksOf(
      parseFrames(await (await send(sessions[0] as string, 'one more', 'spender')).text()),
    );
    expect(last.some((c) => c.type === 'data-keel-limit')).toBe(true);
    expect(model.requests.length).toBe(before);
  });
});

describe('orchestrator HTTP API', () => {
  it('streams a turn as the UI message stream v1 and stores the conversation', async () => {
    replies.push({ text: 'Hello there, how can I help?' });
    const id = await createSession();
    const res = await send(id, 'Hi');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const frames = parseFrames(await res.text());
    expect(frames.at(-1)?.data).toBe('[DONE]');
    const chunks = chunksOf(frames);
    for (const chunk of chunks) expect(uiMessageChunkSchema.safeParse(chunk).success).toBe(true);
    for (const frame of frames.slice(0, -1)) expect(frame.id).toMatch(/^\d+-\d+$/);
    const message = assembleUiMessage(chunks);
    expect(message.parts).toContainEqual({
      type: 'text',
      text: 'Hello there, how can I help?',
      state: 'done',
    });
    expect(message.metadata).toMatchObject({ model: 'claude-local', traceId: expect.any(String) });

    const session = (await (
      await fetch(`${base}/v1/sessions/${id}`, { headers: as('alice') })
    ).json()) as {
      messages: Array<{ role: string }>;
      activeTurn: unknown;
    };
    expect(session.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(session.activeTurn).toBeNull();
    expect(model.requests[0]?.messages[0]).toMatchObject({
      role: 'system',
      text: 'You are a support agent.',
    });
  });

  it('S07 another user gets 404 for every path of a session, and never sees it listed', async () => {
    const id = await createSession('alice');
    const paths: Array<[string, string]> = [
      ['GET', `/v1/sessions/${id}`],
      ['DELETE', `/v1/sessions/${id}`],
      ['POST', `/v1/sessions/${id}/messages`],
      ['GET', `/v1/sessions/${id}/stream`],
      ['POST', `/v1/sessions/${id}/stop`],
      ['GET', `/v1/sessions/${id}/traces`],
      ['POST', `/v1/sessions/${id}/approvals/x`],
      ['GET', `/v1/chat/${id}/stream`],
    ];
    for (const [method, path] of paths) {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: as('mallory'),
        ...(method === 'POST' ? { body: JSON.stringify(userMessage('m1', 'hi')) } : {}),
      });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    }
    const chat = await fetch(`${base}/v1/chat`, {
      method: 'POST',
      headers: as('mallory'),
      body: JSON.stringify({ id, messages: [userMessage('m2', 'hi')], trigger: 'submit-message' }),
    });
    expect(chat.status).toBe(404);
    const list = (await (
      await fetch(`${base}/v1/sessions`, { headers: as('mallory') })
    ).json()) as {
      sessions: unknown[];
    };
    expect(list.sessions).toEqual([]);
    const own = (await (await fetch(`${base}/v1/sessions`, { headers: as('alice') })).json()) as {
      sessions: Array<{ id: string }>;
    };
    expect(own.sessions.map((s) => s.id)).toEqual([id]);
  });

  it('S25 a second turn while one runs gets 409 CONFLICT with Retry-After', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    replies.push(async () => {
      await gate;
      return { text: 'slow answer' };
    });
    const id = await createSession();
    const first = send(id, 'first');
    await waitFor(async () => (await getSession(id)).activeTurn !== null);
    const second = await send(id, 'second');
    expect(second.status).toBe(409);
    expect(second.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(
      ((await second.json()) as { error: { code: string; retryable: boolean } }).error,
    ).toMatchObject({
      code: 'CONFLICT',
      retryable: true,
    });
    release();
    expect((await first).status).toBe(200);
  });

  it('S33 a client that disconnects does not stop the turn; S32 the stream resumes from the start or after Last-Event-ID', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    replies.push(async () => {
      await gate;
      return { text: 'The answer arrives after you left.' };
    });
    const id = await createSession();
    const controller = new AbortController();
    const res = await fetch(`${base}/v1/sessions/${id}/messages`, {
      method: 'POST',
      headers: as('alice'),
      body: JSON.stringify(userMessage('u-1', 'question')),
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('"type":"start"');
    controller.abort();

    // While the turn runs: the partial answer is left out of GET, and the stream replays.
    const during = await getSession(id);
    expect(during.activeTurn).not.toBeNull();
    expect(during.messages.map((m) => m.role)).toEqual(['user']);
    const resumed = fetch(`${base}/v1/sessions/${id}/stream`, { headers: as('alice') });
    release();
    const replay = parseFrames(await (await resumed).text());
    expect(replay.at(-1)?.data).toBe('[DONE]');
    const replayed = assembleUiMessage(chunksOf(replay));
    expect(replayed.parts).toContainEqual(
      expect.objectContaining({ type: 'text', text: 'The answer arrives after you left.' }),
    );

    await waitFor(async () => (await getSession(id)).activeTurn === null);
    const after = await getSession(id);
    expect(after.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    // No active turn now: 204.
    const none = await fetch(`${base}/v1/sessions/${id}/stream`, { headers: as('alice') });
    expect(none.status).toBe(204);
  });

  it('resumes after Last-Event-ID without repeating frames', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    replies.push({ toolCalls: [{ name: 'orders__get_order', arguments: { id: 7 } }] });
    replies.push(async () => {
      await gate;
      return { text: 'Order 7 has shipped.' };
    });
    const id = await createSession();
    const res = await send(id, 'where is 7');
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('tool-output-available')) {
      text += new TextDecoder().decode((await reader.read()).value);
    }
    const seen = parseFrames(text.slice(0, text.lastIndexOf('\n\n') + 2));
    const lastId = seen.at(-1)?.id as string;
    const resumed = fetch(`${base}/v1/sessions/${id}/stream`, {
      headers: { ...as('alice'), 'last-event-id': lastId },
    });
    release();
    const rest = parseFrames(await (await resumed).text());
    const ids = rest.filter((f) => f.id !== undefined).map((f) => f.id);
    expect(ids).not.toContain(lastId);
    expect(ids.every((i) => seen.every((s) => s.id !== i))).toBe(true);
    const all = [...chunksOf(seen), ...chunksOf(rest)];
    expect(assembleUiMessage(all).parts.at(-1)).toMatchObject({ text: 'Order 7 has shipped.' });
    await reader.cancel();
  });

  it("accepts useChat's body at POST /v1/chat, opening the session on its first message", async () => {
    replies.push({ text: 'Hi from chat' });
    const res = await fetch(`${base}/v1/chat`, {
      method: 'POST',
      headers: as('alice'),
      body: JSON.stringify({
        id: 'chat-abc',
        messages: [userMessage('u1', 'hello')],
        trigger: 'submit-message',
        extra: 'ignored',
      }),
    });
    expect(res.status).toBe(200);
    expect(assembleUiMessage(chunksOf(parseFrames(await res.text()))).parts).toContainEqual(
      expect.objectContaining({ text: 'Hi from chat' }),
    );
    expect((await getSession('chat-abc')).messages).toHaveLength(2);
    const mismatch = await fetch(`${base}/v1/sessions/chat-abc/messages`, {
      method: 'POST',
      headers: as('alice'),
      body: JSON.stringify({
        id: 'other',
        messages: [userMessage('u2', 'x')],
        trigger: 'submit-message',
      }),
    });
    expect(mismatch.status).toBe(400);
  });

  it('pauses for approval and continues at the approvals endpoint', async () => {
    replies.push({ toolCalls: [{ name: 'orders__refund_order', arguments: { id: 7 } }] });
    replies.push({ text: 'Refund done.' });
    const id = await createSession();
    const chunks = chunksOf(parseFrames(await (await send(id, 'refund 7')).text()));
    const approval = chunks.find((c) => c.type === 'data-keel-approval') as {
      data: { toolCallId: string };
    };
    expect(approval).toBeDefined();
    expect(toolCalls).toHaveLength(0);
    const pending = await getSession(id);
    expect(pending.pendingApprovals).toHaveLength(1);
    const blocked = await send(id, 'another message');
    expect(blocked.status).toBe(409);

    const res = await fetch(`${base}/v1/sessions/${id}/approvals/${approval.data.toolCallId}`, {
      method: 'POST',
      headers: as('alice'),
      body: JSON.stringify({ approved: true }),
    });
    expect(res.status).toBe(200);
    const continued = chunksOf(parseFrames(await res.text()));
    expect(continued.map((c) => c.type)).toContain('tool-output-available');
    expect(toolCalls.map((c) => c.name)).toEqual(['orders__refund_order']);
    const after = await getSession(id);
    expect(after.pendingApprovals).toEqual([]);
    expect(after.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
  });

  it('POST stop ends the running turn and keeps the partial answer', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    replies.push({
      toolCalls: [{ name: 'orders__get_order', arguments: { id: 1 } }],
      text: 'Let me look.',
    });
    replies.push(async () => {
      await gate;
      return { text: 'never shown' };
    });
    const id = await createSession();
    const res = send(id, 'stop me');
    await waitFor(async () => toolCalls.length === 1);
    const stop = fetch(`${base}/v1/sessions/${id}/stop`, { method: 'POST', headers: as('alice') });
    setTimeout(release, 50);
    expect((await stop).status).toBe(202);
    await (await res).text();
    const session = await getSession(id);
    expect(session.activeTurn).toBeNull();
    const answer = session.messages[1] as { parts: Array<{ type: string; text?: string }> };
    expect(answer.parts.some((p) => p.text === 'Let me look.')).toBe(true);
  });

  it('answers bad requests with structured errors', async () => {
    const id = await createSession();
    const badJson = await fetch(`${base}/v1/sessions/${id}/messages`, {
      method: 'POST',
      headers: as('alice'),
      body: '{"id": ',
    });
    expect(badJson.status).toBe(400);
    const body = (await badJson.json()) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ code: 'INVALID_INPUT', correlationId: expect.any(String) });
    expect(JSON.stringify(body)).not.toMatch(/at .*\.ts|stack/i);

    const badPart = await fetch(`${base}/v1/sessions/${id}/messages`, {
      method: 'POST',
      headers: as('alice'),
      body: JSON.stringify({ id: 'x', role: 'user', parts: [{ type: 'file', url: 'x' }] }),
    });
    expect(badPart.status).toBe(400);
    expect(((await badPart.json()) as { error: { message: string } }).error.message).toContain(
      'parts.0',
    );

    const big = await fetch(`${base}/v1/sessions/${id}/messages`, {
      method: 'POST',
      headers: as('alice'),
      body: JSON.stringify(userMessage('big', 'x'.repeat(2 * 1024 * 1024))),
    });
    expect(big.status).toBe(413);

    const noAgent = await fetch(`${base}/v1/sessions`, {
      method: 'POST',
      headers: as('alice'),
      body: JSON.stringify({ agent: 'nope' }),
    });
    expect(noAgent.status).toBe(400);
  });

  it('serves traces, usage, health, readiness and metrics', async () => {
    replies.push({ text: 'Traced answer', usage: { inputTokens: 1000, outputTokens: 100 } });
    const id = await createSession();
    await (await send(id, 'trace me')).text();
    const list = (await (
      await fetch(`${base}/v1/sessions/${id}/traces`, { headers: as('alice') })
    ).json()) as {
      traces: Array<{ traceId: string }>;
    };
    expect(list.traces).toHaveLength(1);
    const traceId = list.traces[0]?.traceId as string;
    const trace = (await (
      await fetch(`${base}/v1/traces/${traceId}`, { headers: as('alice') })
    ).json()) as {
      spans: Array<{ kind: string; attributes: Record<string, unknown> }>;
    };
    const step = trace.spans.find((s) => s.kind === 'step');
    expect(step?.attributes).toMatchObject({
      'gen_ai.request.model': 'claude-local',
      'gen_ai.usage.input_tokens': 1000,
      'gen_ai.usage.output_tokens': 100,
    });
    expect((await fetch(`${base}/v1/traces/${traceId}`, { headers: as('mallory') })).status).toBe(
      404,
    );

    const usage = (await (await fetch(`${base}/v1/usage`, { headers: as('alice') })).json()) as {
      total: { costUsd: number; inputTokens: number };
    };
    expect(usage.total.inputTokens).toBe(1000);
    expect(usage.total.costUsd).toBeCloseTo((1000 * 3 + 100 * 15) / 1e6, 9);

    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('keel_orchestrator_turns_total{status="ok"} 1');
    expect(metrics).toContain(
      'keel_orchestrator_model_tokens_total{model="claude-local",kind="input"} 1000',
    );
  });
});

async function getSession(id: string, user = 'alice') {
  const res = await fetch(`${base}/v1/sessions/${id}`, { headers: as(user) });
  return (await res.json()) as {
    messages: Array<{ role: string; parts: unknown[] }>;
    activeTurn: { id: string } | null;
    pendingApprovals: unknown[];
  };
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
