import { describe, expect, it } from 'vitest';
import type { LocalModelServer } from '../testing/local-model-server.js';
import { createAnthropicClient, toAnthropicMessages } from './anthropic-client.js';
import { ModelCallError } from './model-provider.js';
import type { ModelClient, ModelEvent, ModelRequest } from './model-provider.js';
import { collect, request, useLocalModelServers, weatherTool } from './provider-test-kit.js';

const start = useLocalModelServers();

function client(server: LocalModelServer, model = 'claude-test'): ModelClient {
  return createAnthropicClient({ model, apiKey: 'test-key', baseURL: server.anthropicBaseUrl });
}

describe('createAnthropicClient (real SDK, local model server)', () => {
  it('streams text deltas and ends with one finish carrying the usage', async () => {
    const server = await start([
      { text: 'Hello from the local model.', usage: { inputTokens: 11, outputTokens: 7 } },
    ]);
    const events = await collect(client(server).stream(request()));
    const deltas = events.filter((e) => e.type === 'text-delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.map((e) => e.text).join('')).toBe('Hello from the local model.');
    expect(events.at(-1)).toEqual({
      type: 'finish',
      finishReason: 'stop',
      usage: { inputTokens: 11, outputTokens: 7, cacheReadTokens: 0, cacheWriteTokens: 0 },
    });
    expect(events.filter((e) => e.type === 'finish')).toHaveLength(1);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]).toMatchObject({
      provider: 'anthropic',
      model: 'claude-test',
      stream: true,
      messages: [
        { role: 'system', text: 'Be brief.' },
        { role: 'user', text: 'Weather in Paris?' },
      ],
    });
    expect((server.requests[0]?.raw as { max_tokens: number }).max_tokens).toBe(200);
  });

  it('streams a tool call: start with id and name, argument deltas, then the parsed input', async () => {
    const args = { city: 'Paris', units: { temperature: 'celsius' } };
    const server = await start([
      { text: 'Checking.', toolCalls: [{ name: 'weather__get', arguments: args }] },
    ]);
    const events = await collect(client(server).stream(request({ tools: [weatherTool] })));
    const start0 = events.find((e) => e.type === 'tool-call-start');
    expect(start0).toMatchObject({ toolName: 'weather__get' });
    const id = start0?.type === 'tool-call-start' ? start0.toolCallId : '';
    expect(id).toMatch(/^toolu_/);
    const deltas = events.filter((e) => e.type === 'tool-call-delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.every((e) => e.toolCallId === id)).toBe(true);
    expect(JSON.parse(deltas.map((e) => e.inputTextDelta).join(''))).toEqual(args);
    expect(events).toContainEqual({
      type: 'tool-call',
      toolCallId: id,
      toolName: 'weather__get',
      input: args,
    });
    expect(events.at(-1)).toMatchObject({ type: 'finish', finishReason: 'tool-calls' });
    // start before deltas before the call
    const order = events.map((e) => e.type);
    expect(order.indexOf('tool-call-start')).toBeLessThan(order.indexOf('tool-call-delta'));
    expect(order.lastIndexOf('tool-call-delta')).toBeLessThan(order.indexOf('tool-call'));
    expect(server.requests[0]?.tools).toEqual([
      {
        name: 'weather__get',
        description: 'Weather for a city',
        parameters: weatherTool.inputSchema,
      },
    ]);
  });

  it('sends a tool-result round trip as tool_use / tool_result blocks with is_error', async () => {
    const server = await start((req) =>
      req.messages.some((m) => m.toolResults.length > 0)
        ? { text: 'The tool failed.' }
        : { toolCalls: [{ name: 'weather__get', arguments: { city: 'Paris' } }] },
    );
    const c = client(server);
    const first = await collect(c.stream(request({ tools: [weatherTool] })));
    const call = first.find((e) => e.type === 'tool-call');
    if (call?.type !== 'tool-call') throw new Error('expected a tool call');
    const errorJson = JSON.stringify({ code: 'UNAVAILABLE', message: 'down', retryable: true });
    const second = await collect(
      c.stream(
        request({
          tools: [weatherTool],
          messages: [
            ...request().messages,
            {
              role: 'assistant',
              content: [
                {
                  type: 'tool-call',
                  toolCallId: call.toolCallId,
                  toolName: call.toolName,
                  input: call.input,
                },
              ],
            },
            {
              role: 'user',
              content: [
                {
                  type: 'tool-result',
                  toolCallId: call.toolCallId,
                  toolName: call.toolName,
                  content: errorJson,
                  isError: true,
                },
              ],
            },
          ],
        }),
      ),
    );
    expect(
      second
        .filter((e) => e.type === 'text-delta')
        .map((e) => e.text)
        .join(''),
    ).toBe('The tool failed.');
    const sent = server.requests[1]?.messages ?? [];
    expect(sent.find((m) => m.role === 'assistant')?.toolCalls).toEqual([
      { id: call.toolCallId, name: 'weather__get', arguments: { city: 'Paris' } },
    ]);
    expect(sent.at(-1)?.toolResults).toEqual([
      { toolCallId: call.toolCallId, content: errorJson, isError: true },
    ]);
  });

  it('makes exactly one request on a 429 (SDK retries are off) and throws a transient RATE_LIMITED', async () => {
    const server = await start([
      { error: { status: 429, type: 'rate_limit_error', message: 'slow down', retryAfterS: 2 } },
      { text: 'never reached' },
    ]);
    const error = await collect(client(server).stream(request())).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelCallError);
    const failure = error as ModelCallError;
    expect(failure.transient).toBe(true);
    expect(failure.status).toBe(429);
    expect(failure.keel).toMatchObject({
      code: 'RATE_LIMITED',
      retryable: true,
      retryAfterMs: 2000,
      details: { provider: 'anthropic', model: 'claude-test', status: 429 },
    });
    expect(failure.keel.message).not.toContain('test-key');
    expect(server.requests).toHaveLength(1);
  });

  it('stops the stream when the signal aborts, surfacing the abort reason', async () => {
    const server = await start([{ text: 'x'.repeat(400) }], 2);
    const controller = new AbortController();
    const events: ModelEvent[] = [];
    const error = await (async () => {
      for await (const event of client(server).stream(request({ signal: controller.signal }))) {
        events.push(event);
        if (events.length === 3) controller.abort(new Error('stop pressed'));
      }
    })().catch((e: unknown) => e);
    expect(error).toBe(controller.signal.reason);
    expect(events).toHaveLength(3);
    expect(events.some((e) => e.type === 'finish')).toBe(false);
  });

  it('an already-aborted signal makes no request', async () => {
    const server = await start([{ text: 'hi' }]);
    const controller = new AbortController();
    controller.abort();
    await expect(
      collect(client(server).stream(request({ signal: controller.signal }))),
    ).rejects.toBe(controller.signal.reason);
    expect(server.requests).toHaveLength(0);
  });

  it('sends thinking when configured, and re-sends its blocks ahead of the tool call they led to', async () => {
    const server = await start((req) =>
      req.messages.some((m) => m.toolResults.length > 0)
        ? { text: 'Done.' }
        : { toolCalls: [{ name: 'weather__get', arguments: { city: 'Paris' } }] },
    );
    const c = createAnthropicClient({
      model: 'claude-test',
      apiKey: 'k',
      baseURL: server.anthropicBaseUrl,
      thinking: { budgetTokens: 2048 },
    });
    await collect(c.stream(request({ maxOutputTokens: 4096 })));
    expect((server.requests[0]?.raw as { thinking?: unknown }).thinking).toEqual({
      type: 'enabled',
      budget_tokens: 2048,
    });
    // A budget that does not fit under max_tokens (min 1024) turns thinking off.
    await collect(c.stream(request({ maxOutputTokens: 1000 })));
    expect((server.requests[1]?.raw as { thinking?: unknown }).thinking).toBeUndefined();
  });
});

describe('toAnthropicMessages', () => {
  it('puts tool results before text, drops empty text, and inserts remembered thinking', () => {
    const thinking = [{ type: 'thinking' as const, thinking: 'hmm', signature: 'sig' }];
    const out = toAnthropicMessages(
      [
        {
          role: 'assistant',
          content: [
            { type: 'text', text: '' },
            { type: 'tool-call', toolCallId: 't1', toolName: 'a', input: { x: 1 } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'and also' },
            {
              type: 'tool-result',
              toolCallId: 't1',
              toolName: 'a',
              content: '{"ok":true}',
              isError: false,
            },
          ],
        },
      ],
      (id) => (id === 't1' ? thinking : undefined),
    );
    expect(out).toEqual([
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'hmm', signature: 'sig' },
          { type: 'tool_use', id: 't1', name: 'a', input: { x: 1 } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 't1', content: '{"ok":true}', is_error: false },
          { type: 'text', text: 'and also' },
        ],
      },
    ]);
  });
});

/** A fetch that answers every call with the same Anthropic SSE events and records the bodies. */
function scriptedFetch(events: ReadonlyArray<Record<string, unknown>>, bodies: unknown[]) {
  return async (_input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    bodies.push(JSON.parse(String(init?.body)));
    const text = events
      .map((event) => `event: ${String(event['type'])}\ndata: ${JSON.stringify(event)}\n\n`)
      .join('');
    return new Response(text, { status: 200, headers: { 'content-type': 'text/event-stream' } });
  };
}

/** Written from the documented extended-thinking stream shape (thinking, signature, tool_use). */
const thinkingToolUseEvents = [
  {
    type: 'message_start',
    message: {
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      model: 'claude-test',
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: 40,
        output_tokens: 1,
        cache_read_input_tokens: 25,
        cache_creation_input_tokens: 12,
      },
    },
  },
  {
    type: 'content_block_start',
    index: 0,
    content_block: { type: 'thinking', thinking: '', signature: '' },
  },
  {
    type: 'content_block_delta',
    index: 0,
    delta: { type: 'thinking_delta', thinking: 'Need the ' },
  },
  {
    type: 'content_block_delta',
    index: 0,
    delta: { type: 'thinking_delta', thinking: 'weather.' },
  },
  {
    type: 'content_block_delta',
    index: 0,
    delta: { type: 'signature_delta', signature: 'sig-abc' },
  },
  { type: 'content_block_stop', index: 0 },
  {
    type: 'content_block_start',
    index: 1,
    content_block: { type: 'tool_use', id: 'toolu_1', name: 'weather__get', input: {} },
  },
  {
    type: 'content_block_delta',
    index: 1,
    delta: { type: 'input_json_delta', partial_json: '{"city":' },
  },
  {
    type: 'content_block_delta',
    index: 1,
    delta: { type: 'input_json_delta', partial_json: '"Paris"}' },
  },
  { type: 'content_block_stop', index: 1 },
  {
    type: 'message_delta',
    delta: { stop_reason: 'tool_use', stop_sequence: null },
    usage: { output_tokens: 30 },
  },
  { type: 'message_stop' },
];

describe('createAnthropicClient: extended thinking (scripted stream)', () => {
  const followUp: ModelRequest = request({
    maxOutputTokens: 4096,
    messages: [
      ...request().messages,
      {
        role: 'assistant',
        content: [
          {
            type: 'tool-call',
            toolCallId: 'toolu_1',
            toolName: 'weather__get',
            input: { city: 'Paris' },
          },
        ],
      },
      {
        role: 'user',
        content: [
          {
            type: 'tool-result',
            toolCallId: 'toolu_1',
            toolName: 'weather__get',
            content: '"21C"',
            isError: false,
          },
        ],
      },
    ],
  });

  it('maps thinking to reasoning deltas, usage with cache tokens, and sends the thinking back with its tool call', async () => {
    const bodies: unknown[] = [];
    const c = createAnthropicClient({
      model: 'claude-test',
      apiKey: 'k',
      thinking: true,
      fetch: scriptedFetch(thinkingToolUseEvents, bodies),
    });
    const events = await collect(c.stream(request({ maxOutputTokens: 8192 })));
    expect(events.filter((e) => e.type === 'reasoning-delta').map((e) => e.text)).toEqual([
      'Need the ',
      'weather.',
    ]);
    expect(events).toContainEqual({
      type: 'tool-call',
      toolCallId: 'toolu_1',
      toolName: 'weather__get',
      input: { city: 'Paris' },
    });
    expect(events.at(-1)).toEqual({
      type: 'finish',
      finishReason: 'tool-calls',
      usage: { inputTokens: 40, outputTokens: 30, cacheReadTokens: 25, cacheWriteTokens: 12 },
    });
    expect(bodies[0]).toMatchObject({ thinking: { type: 'enabled', budget_tokens: 4096 } });

    await collect(c.stream(followUp));
    expect(bodies[1]).toMatchObject({
      thinking: { type: 'enabled', budget_tokens: 4095 },
      messages: [
        { role: 'user' },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'Need the weather.', signature: 'sig-abc' },
            { type: 'tool_use', id: 'toolu_1', name: 'weather__get', input: { city: 'Paris' } },
          ],
        },
        {
          role: 'user',
          content: [{ type: 'tool_result', tool_use_id: 'toolu_1', is_error: false }],
        },
      ],
    });
  });

  it('continues a tool loop it did not start without thinking rather than be refused', async () => {
    const bodies: unknown[] = [];
    const c = createAnthropicClient({
      model: 'claude-test',
      apiKey: 'k',
      thinking: { budgetTokens: 2048 },
      fetch: scriptedFetch(thinkingToolUseEvents, bodies),
    });
    await collect(c.stream(followUp));
    const body = bodies[0] as {
      thinking?: unknown;
      messages: Array<{ content: Array<{ type: string }> }>;
    };
    expect(body.thinking).toBeUndefined();
    expect(body.messages[1]?.content.map((b) => b.type)).toEqual(['tool_use']);
  });
});
