// The orchestrator's stream read by the REAL `ai` client, the way `useChat` reads it: the
// `DefaultChatTransport` (global fetch over loopback) parses every SSE chunk with that version's
// strict chunk schema, and `readUIMessageStream` rebuilds the assistant message. Run against
// ai 5.0.0 (the oldest we promise, strict chunk schema) and ai 6 (the newest that runs on Node 20).
// Any chunk or field a version rejects surfaces through `onError`, so every test asserts which
// errors (none, or exactly our KeelError) reached it.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as aiV5 from 'ai-v5';
import * as aiV6 from 'ai-v6';
import { createAuthenticator, createOrchestrator } from '@keel/orchestrator';
import type {
  AgentConfig,
  ModelsConfig,
  Orchestrator,
  ToolCallOutcome,
  ToolGateway,
} from '@keel/orchestrator';
import { createLocalModelServer } from '@keel/orchestrator/testing';
import type { LocalModelReply, LocalModelServer } from '@keel/orchestrator/testing';

/** The parts of a rebuilt UIMessage these tests read (the same in ai 5 and ai 6). */
interface RebuiltPart {
  readonly type: string;
  readonly [field: string]: unknown;
}
interface RebuiltMessage {
  readonly id: string;
  readonly role: string;
  readonly metadata?: unknown;
  readonly parts: readonly RebuiltPart[];
}

/** One `ai` version behind the two calls `useChat` makes: send (or resume), then read. */
interface AiClient {
  sendMessages(chatId: string, text: string): Promise<ReadableStream<unknown>>;
  reconnectToStream(chatId: string): Promise<ReadableStream<unknown> | null>;
  read(stream: ReadableStream<unknown>, onError: (error: unknown) => void): AsyncIterable<unknown>;
}

const USER = 'alice';
const headers = { 'x-keel-user': USER };
let messageCounter = 0;
const userMessage = (text: string) => ({
  id: `u-${++messageCounter}`,
  role: 'user' as const,
  parts: [{ type: 'text' as const, text }],
});

function v5Client(api: string, fetch?: typeof globalThis.fetch): AiClient {
  const transport = new aiV5.DefaultChatTransport<aiV5.UIMessage>({
    api,
    headers,
    ...(fetch === undefined ? {} : { fetch }),
  });
  return {
    sendMessages: (chatId, text) =>
      transport.sendMessages({
        chatId,
        messages: [userMessage(text)],
        trigger: 'submit-message',
        messageId: undefined,
        abortSignal: undefined,
      }),
    reconnectToStream: (chatId) => transport.reconnectToStream({ chatId }),
    read: (stream, onError) =>
      aiV5.readUIMessageStream<aiV5.UIMessage>({
        stream: stream as ReadableStream<aiV5.UIMessageChunk>,
        onError,
      }),
  };
}

function v6Client(api: string, fetch?: typeof globalThis.fetch): AiClient {
  const transport = new aiV6.DefaultChatTransport<aiV6.UIMessage>({
    api,
    headers,
    ...(fetch === undefined ? {} : { fetch }),
  });
  return {
    sendMessages: (chatId, text) =>
      transport.sendMessages({
        chatId,
        messages: [userMessage(text)],
        trigger: 'submit-message',
        messageId: undefined,
        abortSignal: undefined,
      }),
    reconnectToStream: (chatId) => transport.reconnectToStream({ chatId }),
    read: (stream, onError) =>
      aiV6.readUIMessageStream<aiV6.UIMessage>({
        stream: stream as ReadableStream<aiV6.UIMessageChunk>,
        onError,
      }),
  };
}

const versions: Array<{
  version: string;
  client: (api: string, fetch?: typeof globalThis.fetch) => AiClient;
  /** ai 5 parses chunks with strict objects (an unknown field is an error); ai 6 with loose ones. */
  rejectsUnknownFields: boolean;
}> = [
  { version: 'ai@5.0.0', client: v5Client, rejectsUnknownFields: true },
  { version: 'ai@6.0.325', client: v6Client, rejectsUnknownFields: false },
];

const providers = [
  { provider: 'anthropic', agent: 'support-anthropic', model: 'claude-local' },
  { provider: 'openai', agent: 'support-openai', model: 'gpt-local' },
] as const;

const agent = (name: string, model: string, overrides: Partial<AgentConfig> = {}): AgentConfig => ({
  name,
  description: '',
  prompt: 'You are a support agent.',
  model,
  tools: ['orders__*'],
  limits: { maxSteps: 5, maxToolCalls: 10, maxTokensPerTurn: 4096 },
  context: { strategy: 'window' },
  approval: ['orders__refund*'],
  handlers: {},
  source: { file: `${name}.yaml`, lines: {} },
  ...overrides,
});

const ORDER = { id: 7, status: 'shipped' };
const NOT_FOUND = {
  code: 'ORDER_NOT_FOUND',
  message: 'No order 404.',
  retryable: false,
  correlationId: 'corr-404',
};

const gateway: ToolGateway = {
  listTools: async () => [
    { name: 'orders__get_order', description: 'Get an order', inputSchema: { type: 'object' } },
    { name: 'orders__refund_order', description: 'Refund', inputSchema: { type: 'object' } },
  ],
  callTool: async (name, input): Promise<ToolCallOutcome> => {
    if (name === 'orders__get_order' && (input as { id?: number }).id === 404) {
      return { ok: false, error: NOT_FOUND };
    }
    if (name === 'orders__get_order') return { ok: true, output: ORDER };
    return { ok: true, output: { refunded: true } };
  },
  ping: async () => true,
  close: async () => undefined,
};

let model: LocalModelServer;
let orchestrator: Orchestrator;
let base: string;
let replies: Array<LocalModelReply | (() => Promise<LocalModelReply>)>;

beforeEach(async () => {
  replies = [];
  model = await createLocalModelServer({
    script: async () => {
      const next = replies.shift() ?? { text: 'No script left.' };
      return typeof next === 'function' ? next() : next;
    },
  });
  const entry = { prices: { inputPerMTok: 3, outputPerMTok: 15 }, contextWindow: 200_000 };
  const models: ModelsConfig = {
    file: 'models.yaml',
    models: {
      smart: [
        {
          provider: 'anthropic',
          model: 'claude-local',
          baseUrl: model.anthropicBaseUrl,
          maxOutputTokens: 1024,
          ...entry,
        },
      ],
      fast: [
        {
          provider: 'openai',
          model: 'gpt-local',
          baseUrl: model.openaiBaseUrl,
          maxOutputTokens: 1024,
          ...entry,
        },
      ],
    },
  };
  const oneStep = { limits: { maxSteps: 1, maxToolCalls: 10, maxTokensPerTurn: 4096 } };
  orchestrator = createOrchestrator({
    agents: [
      agent('support-anthropic', 'smart'),
      agent('support-openai', 'fast'),
      agent('one-step-anthropic', 'smart', oneStep),
      agent('one-step-openai', 'fast', oneStep),
    ],
    models,
    gateway,
    authenticator: createAuthenticator({ dev: { user: 'dev-user', tenant: 'dev' } }),
    logger: pino({ level: 'silent' }),
    env: { ANTHROPIC_API_KEY: 'local', OPENAI_API_KEY: 'local' },
    heartbeatMs: 0,
  });
  base = (await orchestrator.listen(0)).url;
});

afterEach(async () => {
  await orchestrator.close(1_000);
  await model.close();
});

async function createSession(agentName: string): Promise<string> {
  const res = await fetch(`${base}/v1/sessions`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ agent: agentName }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

/** Reads the stream as useChat does; returns the last message state and every error reported. */
async function readTurn(
  client: AiClient,
  stream: ReadableStream<unknown>,
): Promise<{ message: RebuiltMessage; errors: unknown[] }> {
  const errors: unknown[] = [];
  let last: unknown;
  for await (const message of client.read(stream, (error) => errors.push(error))) last = message;
  expect(last, 'readUIMessageStream produced no message').toBeDefined();
  return { message: last as RebuiltMessage, errors };
}

async function turn(
  client: AiClient,
  agentName: string,
  text: string,
): Promise<{ message: RebuiltMessage; errors: unknown[] }> {
  const chatId = await createSession(agentName);
  return readTurn(client, await client.sendMessages(chatId, text));
}

/** Errors as text, so a failing expectation names what the client rejected. */
const describeErrors = (errors: unknown[]): string[] =>
  errors.map((e) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)));

const partsOf = (message: RebuiltMessage, type: string) =>
  message.parts.filter((p) => p.type === type);

function expectKeelMetadata(message: RebuiltMessage, modelName: string): void {
  expect(message.metadata).toMatchObject({
    model: modelName,
    usage: {
      inputTokens: expect.any(Number),
      outputTokens: expect.any(Number),
    },
    costUsd: expect.any(Number),
    traceId: expect.any(String),
  });
  expect((message.metadata as { costUsd: number }).costUsd).toBeGreaterThan(0);
}

describe.each(versions)('the real $version client reads the stream as useChat does', (v) => {
  let client: AiClient;
  beforeEach(() => {
    client = v.client(`${base}/v1/chat`);
  });

  describe.each(providers)('$provider model', (p) => {
    it('a tool call then a text answer: tool part output-available, text, metadata', async () => {
      replies.push({ toolCalls: [{ name: 'orders__get_order', arguments: { id: 7 } }] });
      replies.push({ text: 'Order 7 has shipped.' });
      const { message, errors } = await turn(client, p.agent, 'where is order 7?');
      expect(describeErrors(errors)).toEqual([]);

      expect(message.role).toBe('assistant');
      const [tool, ...moreTools] = partsOf(message, 'tool-orders__get_order');
      expect(moreTools).toEqual([]);
      expect(tool).toMatchObject({
        toolCallId: expect.any(String),
        state: 'output-available',
        input: { id: 7 },
        output: ORDER,
      });
      const texts = partsOf(message, 'text');
      expect(texts.map((t) => t.text).join('')).toBe('Order 7 has shipped.');
      expect(texts.at(-1)).toMatchObject({ state: 'done' });
      // Two model calls: each is a step.
      expect(partsOf(message, 'step-start')).toHaveLength(2);
      expectKeelMetadata(message, p.model);
    });

    it('a failing tool: tool part output-error with the KeelError as errorText, then text', async () => {
      replies.push({ toolCalls: [{ name: 'orders__get_order', arguments: { id: 404 } }] });
      replies.push({ text: 'I could not find order 404.' });
      const { message, errors } = await turn(client, p.agent, 'where is order 404?');
      expect(describeErrors(errors)).toEqual([]);

      const [tool] = partsOf(message, 'tool-orders__get_order');
      expect(tool).toMatchObject({ state: 'output-error', input: { id: 404 } });
      expect(JSON.parse(tool?.errorText as string)).toMatchObject({
        code: 'ORDER_NOT_FOUND',
        message: 'No order 404.',
        retryable: false,
        correlationId: 'corr-404',
      });
      expect(
        partsOf(message, 'text')
          .map((t) => t.text)
          .join(''),
      ).toBe('I could not find order 404.');
      // The model was told the tool failed.
      const toolResult = model.requests[1]?.messages
        .flatMap((m) => m.toolResults)
        .find((r) => r.content.includes('ORDER_NOT_FOUND'));
      expect(toolResult).toBeDefined();
      expectKeelMetadata(message, p.model);
    });

    it('a tool that needs approval: the turn pauses with a data-keel-approval part', async () => {
      replies.push({
        text: 'I will refund it once you approve.',
        toolCalls: [{ name: 'orders__refund_order', arguments: { id: 7, reason: 'damaged' } }],
      });
      const { message, errors } = await turn(client, p.agent, 'refund order 7');
      expect(describeErrors(errors)).toEqual([]);

      const [approval, ...more] = partsOf(message, 'data-keel-approval');
      expect(more).toEqual([]);
      const [tool] = partsOf(message, 'tool-orders__refund_order');
      expect(tool).toMatchObject({ state: 'input-available', input: { id: 7, reason: 'damaged' } });
      expect(approval?.data).toEqual({
        toolCallId: tool?.toolCallId,
        toolName: 'orders__refund_order',
        input: { id: 7, reason: 'damaged' },
      });
      expect(
        partsOf(message, 'text')
          .map((t) => t.text)
          .join(''),
      ).toBe('I will refund it once you approve.');
      expect(message.metadata).toMatchObject({ model: p.model, traceId: expect.any(String) });
    });

    it('a limit breach (maxSteps 1 after a tool call): data-keel-limit part, and the error chunk surfaces as our KeelError', async () => {
      replies.push({ toolCalls: [{ name: 'orders__get_order', arguments: { id: 7 } }] });
      replies.push({ text: 'never reached' });
      const { message, errors } = await turn(
        client,
        p.agent.replace('support-', 'one-step-'),
        'where is order 7?',
      );
      // Exactly one error: the `error` chunk (ai delivers its errorText as an Error's message).
      // A schema rejection would show up here as a TypeValidationError instead.
      expect(describeErrors(errors)).toHaveLength(1);
      const [error] = errors;
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).name).toBe('Error');
      expect(JSON.parse((error as Error).message)).toMatchObject({
        code: 'LIMIT_EXCEEDED',
        retryable: false,
        details: { limit: 'maxSteps' },
        correlationId: expect.any(String),
      });

      const [limit] = partsOf(message, 'data-keel-limit');
      expect(limit?.data).toMatchObject({ error: { code: 'LIMIT_EXCEEDED' } });
      expect(partsOf(message, 'tool-orders__get_order')[0]).toMatchObject({
        state: 'output-available',
        output: ORDER,
      });
      expect(model.requests).toHaveLength(1);
    });
  });

  it('reconnectToStream answers null (204) when no turn is active, and after a turn ended', async () => {
    const chatId = await createSession('support-anthropic');
    expect(await client.reconnectToStream(chatId)).toBeNull();

    replies.push({ text: 'Done.' });
    const { errors } = await readTurn(client, await client.sendMessages(chatId, 'hi'));
    expect(describeErrors(errors)).toEqual([]);
    expect(await client.reconnectToStream(chatId)).toBeNull();
  });

  it('reconnectToStream during a turn replays it from the start and rebuilds the same message', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    replies.push({ toolCalls: [{ name: 'orders__get_order', arguments: { id: 7 } }] });
    replies.push(async () => {
      await gate;
      return { text: 'Order 7 has shipped.' };
    });
    const chatId = await createSession('support-anthropic');
    const first = readTurn(client, await client.sendMessages(chatId, 'where is order 7?'));
    const resumed = await client.reconnectToStream(chatId);
    expect(resumed).not.toBeNull();
    const replay = readTurn(client, resumed as ReadableStream<unknown>);
    release();
    const [original, replayed] = await Promise.all([first, replay]);
    expect(describeErrors(original.errors)).toEqual([]);
    expect(describeErrors(replayed.errors)).toEqual([]);
    expect(replayed.message.parts).toEqual(original.message.parts);
    expect(replayed.message.metadata).toEqual(original.message.metadata);
    expect(partsOf(replayed.message, 'tool-orders__get_order')[0]).toMatchObject({
      state: 'output-available',
      output: ORDER,
    });
  });

  // Controls: the same real stream with one chunk altered on the way, to show that a chunk this
  // version rejects does reach `onError` (so the empty error lists above mean something).
  it.each([
    { change: 'an unknown field on text-delta', alter: { extra: true }, key: 'unknownField' },
    { change: 'a text-delta whose delta is a number', alter: { delta: 5 }, key: 'wrongType' },
  ])('control: $change is reported through onError when this version rejects it', async (c) => {
    const altering: typeof globalThis.fetch = async (input, init) => {
      const res = await fetch(input, init);
      const text = await res.text();
      let altered = false;
      const body = text.replace(/^data: (\{.*\})$/gm, (line, json: string) => {
        const chunk = JSON.parse(json) as { type: string };
        if (altered || chunk.type !== 'text-delta') return line;
        altered = true;
        return `data: ${JSON.stringify({ ...chunk, ...c.alter })}`;
      });
      expect(altered).toBe(true);
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const altered = v.client(`${base}/v1/chat`, altering);
    replies.push({ text: 'Hello there.' });
    const chatId = await createSession('support-anthropic');
    const { errors } = await readTurn(altered, await altered.sendMessages(chatId, 'hi'));
    const rejects = c.key === 'wrongType' || v.rejectsUnknownFields;
    if (rejects) {
      expect(errors).toHaveLength(1);
      expect((errors[0] as Error).name).toBe('AI_TypeValidationError');
    } else {
      expect(describeErrors(errors)).toEqual([]);
    }
  });
});
