import { describe, expect, it } from 'vitest';
import type { LocalModelServer } from '../testing/local-model-server.js';
import { createOpenAIClient, openAIToolContent, toOpenAIMessages } from './openai-client.js';
import { ModelCallError } from './model-provider.js';
import type { ModelClient, ModelEvent } from './model-provider.js';
import { collect, request, useLocalModelServers, weatherTool } from './provider-test-kit.js';

const start = useLocalModelServers();

function client(server: LocalModelServer, model = 'gpt-test'): ModelClient {
  return createOpenAIClient({ model, apiKey: 'test-key', baseURL: server.openaiBaseUrl });
}

describe('createOpenAIClient (real SDK, local model server)', () => {
  it('streams text deltas and ends with one finish carrying the usage', async () => {
    const server = await start([
      { text: 'Hello from the local model.', usage: { inputTokens: 13, outputTokens: 6 } },
    ]);
    const events = await collect(client(server).stream(request()));
    const deltas = events.filter((e) => e.type === 'text-delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.map((e) => e.text).join('')).toBe('Hello from the local model.');
    expect(events.at(-1)).toEqual({
      type: 'finish',
      finishReason: 'stop',
      usage: { inputTokens: 13, outputTokens: 6, cacheReadTokens: 0, cacheWriteTokens: 0 },
    });
    expect(events.filter((e) => e.type === 'finish')).toHaveLength(1);
    expect(server.requests).toHaveLength(1);
    const raw = server.requests[0]?.raw as Record<string, unknown>;
    expect(raw['stream_options']).toEqual({ include_usage: true });
    // A compatible server (baseURL set) gets the widely known `max_tokens`.
    expect(raw['max_tokens']).toBe(200);
    expect(raw['max_completion_tokens']).toBeUndefined();
    expect(server.requests[0]?.messages).toMatchObject([
      { role: 'system', text: 'Be brief.' },
      { role: 'user', text: 'Weather in Paris?' },
    ]);
  });

  it('streams tool calls by index: start with id and name, argument deltas, then parsed inputs', async () => {
    const args = { city: 'Paris', units: { temperature: 'celsius' } };
    const server = await start([
      {
        toolCalls: [
          { name: 'weather__get', arguments: args },
          { name: 'weather__get', arguments: { city: 'Rome' } },
        ],
      },
    ]);
    const events = await collect(client(server).stream(request({ tools: [weatherTool] })));
    const starts = events.filter((e) => e.type === 'tool-call-start');
    expect(starts).toHaveLength(2);
    const [a, b] = starts.map((e) => e.toolCallId);
    expect(a).toMatch(/^call_/);
    expect(a).not.toBe(b);
    const deltasA = events.filter((e) => e.type === 'tool-call-delta' && e.toolCallId === a);
    expect(deltasA.length).toBeGreaterThan(1);
    expect(
      JSON.parse(
        deltasA.map((e) => (e.type === 'tool-call-delta' ? e.inputTextDelta : '')).join(''),
      ),
    ).toEqual(args);
    expect(events.filter((e) => e.type === 'tool-call')).toEqual([
      { type: 'tool-call', toolCallId: a, toolName: 'weather__get', input: args },
      { type: 'tool-call', toolCallId: b, toolName: 'weather__get', input: { city: 'Rome' } },
    ]);
    expect(events.at(-1)).toMatchObject({ type: 'finish', finishReason: 'tool-calls' });
    expect(server.requests[0]?.tools).toEqual([
      {
        name: 'weather__get',
        description: 'Weather for a city',
        parameters: weatherTool.inputSchema,
      },
    ]);
  });

  it('sends a tool-result round trip as tool_calls and role "tool" messages, errors marked isError', async () => {
    const server = await start((req) =>
      req.messages.some((m) => m.toolResults.length > 0)
        ? { text: 'The tool failed.' }
        : { toolCalls: [{ name: 'weather__get', arguments: { city: 'Paris' } }] },
    );
    const c = client(server);
    const first = await collect(c.stream(request({ tools: [weatherTool] })));
    const call = first.find((e) => e.type === 'tool-call');
    if (call?.type !== 'tool-call') throw new Error('expected a tool call');
    const keelError = {
      code: 'UNAVAILABLE',
      message: 'down',
      retryable: true,
      correlationId: 'c1',
    };
    const second = await collect(
      c.stream(
        request({
          tools: [weatherTool],
          messages: [
            ...request().messages,
            {
              role: 'assistant',
              content: [
                { type: 'text', text: 'Let me check.' },
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
                  content: JSON.stringify(keelError),
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
    expect(sent.find((m) => m.role === 'assistant')).toMatchObject({
      text: 'Let me check.',
      toolCalls: [{ id: call.toolCallId, name: 'weather__get', arguments: { city: 'Paris' } }],
    });
    const tool = sent.find((m) => m.role === 'tool');
    expect(tool?.toolResults[0]?.toolCallId).toBe(call.toolCallId);
    expect(JSON.parse(tool?.toolResults[0]?.content ?? '')).toEqual({
      isError: true,
      error: keelError,
    });
  });

  it('makes exactly one request on a 500 (SDK retries are off) and throws a transient UNAVAILABLE', async () => {
    const server = await start([
      { error: { status: 500, type: 'server_error', message: 'boom' } },
      { text: 'never reached' },
    ]);
    const error = await collect(client(server).stream(request())).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelCallError);
    expect((error as ModelCallError).transient).toBe(true);
    expect((error as ModelCallError).keel).toMatchObject({
      code: 'UNAVAILABLE',
      retryable: true,
      details: { provider: 'openai', model: 'gpt-test', status: 500 },
    });
    expect(server.requests).toHaveLength(1);
  });

  it('sends max_completion_tokens when asked (OpenAI itself)', async () => {
    const server = await start([{ text: 'ok' }]);
    const c = createOpenAIClient({
      model: 'gpt-test',
      apiKey: 'k',
      baseURL: server.openaiBaseUrl,
      maxTokensField: 'max_completion_tokens',
    });
    await collect(c.stream(request()));
    const raw = server.requests[0]?.raw as Record<string, unknown>;
    expect(raw['max_completion_tokens']).toBe(200);
    expect(raw['max_tokens']).toBeUndefined();
  });

  it('a 401 is non-transient UNAUTHENTICATED and its message shows no key', async () => {
    const server = await start([
      {
        error: {
          status: 401,
          type: 'invalid_request_error',
          message: 'Incorrect API key provided: test-key',
        },
      },
    ]);
    const error = (await collect(client(server).stream(request())).catch(
      (e: unknown) => e,
    )) as ModelCallError;
    expect(error.transient).toBe(false);
    expect(error.keel.code).toBe('UNAUTHENTICATED');
    expect(JSON.stringify(error.keel)).not.toContain('test-key');
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

  it('a stream cut without its end is a transient error, not a finish', async () => {
    const server = await start([
      { text: 'partial answer here', failAfterChunks: 3, failMode: 'destroy' },
    ]);
    const events: ModelEvent[] = [];
    const error = await (async () => {
      for await (const event of client(server).stream(request())) events.push(event);
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelCallError);
    expect((error as ModelCallError).transient).toBe(true);
    expect(events.some((e) => e.type === 'text-delta')).toBe(true);
    expect(events.some((e) => e.type === 'finish')).toBe(false);
  });
});

describe('toOpenAIMessages', () => {
  it('puts the system prompt first, tool results as tool messages before user text', () => {
    expect(
      toOpenAIMessages('sys', [
        { role: 'user', content: [{ type: 'text', text: 'hi' }] },
        {
          role: 'assistant',
          content: [{ type: 'tool-call', toolCallId: 't1', toolName: 'a', input: { x: 1 } }],
        },
        {
          role: 'user',
          content: [
            {
              type: 'tool-result',
              toolCallId: 't1',
              toolName: 'a',
              content: '{"ok":true}',
              isError: false,
            },
            { type: 'text', text: 'thanks' },
          ],
        },
      ]),
    ).toEqual([
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'hi' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 't1', type: 'function', function: { name: 'a', arguments: '{"x":1}' } }],
      },
      { role: 'tool', tool_call_id: 't1', content: '{"ok":true}' },
      { role: 'user', content: 'thanks' },
    ]);
  });

  it('wraps a non-JSON error result as a string', () => {
    expect(JSON.parse(openAIToolContent('plain failure', true))).toEqual({
      isError: true,
      error: 'plain failure',
    });
  });
});

describe('createOpenAIClient: compatible-server extras (scripted stream)', () => {
  it('maps reasoning_content to reasoning deltas and cached_tokens to cacheReadTokens', async () => {
    const chunks = [
      {
        choices: [
          {
            index: 0,
            delta: { role: 'assistant', reasoning_content: 'Thinking…' },
            finish_reason: null,
          },
        ],
      },
      { choices: [{ index: 0, delta: { content: 'Answer.' }, finish_reason: null }] },
      { choices: [{ index: 0, delta: {}, finish_reason: 'length' }] },
      {
        choices: [],
        usage: {
          prompt_tokens: 100,
          completion_tokens: 9,
          prompt_tokens_details: { cached_tokens: 64 },
        },
      },
    ].map((c) => ({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', ...c }));
    const fetchStub = async (): Promise<Response> =>
      new Response(
        chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join('') + 'data: [DONE]\n\n',
        {
          status: 200,
          headers: { 'content-type': 'text/event-stream' },
        },
      );
    const c = createOpenAIClient({
      model: 'm',
      apiKey: 'k',
      baseURL: 'http://127.0.0.1:1/v1',
      fetch: fetchStub,
    });
    const events: ModelEvent[] = [];
    for await (const event of c.stream(request())) events.push(event);
    expect(events).toEqual([
      { type: 'reasoning-delta', text: 'Thinking…' },
      { type: 'text-delta', text: 'Answer.' },
      {
        type: 'finish',
        finishReason: 'length',
        usage: { inputTokens: 100, outputTokens: 9, cacheReadTokens: 64, cacheWriteTokens: 0 },
      },
    ]);
  });
});
