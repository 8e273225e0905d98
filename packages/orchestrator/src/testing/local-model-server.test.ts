import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { createLocalModelServer } from './local-model-server.js';
import type { LocalModelScript, LocalModelServer } from './local-model-server.js';

const servers: LocalModelServer[] = [];

async function start(script: LocalModelScript): Promise<LocalModelServer> {
  const server = await createLocalModelServer({ script, chunkSize: 5 });
  servers.push(server);
  return server;
}

function anthropic(server: LocalModelServer): Anthropic {
  return new Anthropic({ apiKey: 'test-key', baseURL: server.anthropicBaseUrl, maxRetries: 0 });
}

function openai(server: LocalModelServer): OpenAI {
  return new OpenAI({ apiKey: 'test-key', baseURL: server.openaiBaseUrl, maxRetries: 0 });
}

const weatherTool = {
  name: 'get_weather',
  description: 'Weather for a city',
  input_schema: {
    type: 'object' as const,
    properties: { city: { type: 'string' } },
    required: ['city'],
  },
};

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

describe('local model server: Anthropic Messages API', () => {
  it('streams text that the SDK assembles into a final message with usage', async () => {
    const server = await start([{ text: 'Hello from the local model.' }]);
    const stream = anthropic(server).messages.stream({
      model: 'claude-test',
      max_tokens: 100,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'Say hello in a sentence.' }],
    });
    const deltas: string[] = [];
    stream.on('text', (delta) => deltas.push(delta));
    const message = await stream.finalMessage();

    expect(message.content).toMatchObject([{ type: 'text', text: 'Hello from the local model.' }]);
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join('')).toBe('Hello from the local model.');
    expect(message.stop_reason).toBe('end_turn');
    expect(message.model).toBe('claude-test');
    // "Be brief." + "Say hello in a sentence." = 33 chars -> 9 tokens; 27 chars out -> 7 tokens
    expect(message.usage.input_tokens).toBe(9);
    expect(message.usage.output_tokens).toBe(7);
    expect(server.requests[0]).toMatchObject({
      provider: 'anthropic',
      model: 'claude-test',
      stream: true,
      messages: [
        { role: 'system', text: 'Be brief.' },
        { role: 'user', text: 'Say hello in a sentence.' },
      ],
    });
  });

  it('streams a tool_use block whose input the SDK parses, with stop_reason tool_use', async () => {
    const args = { city: 'Paris', units: { temperature: 'celsius' } };
    const server = await start([
      { text: 'Checking.', toolCalls: [{ name: 'get_weather', arguments: args }] },
    ]);
    const message = await anthropic(server)
      .messages.stream({
        model: 'claude-test',
        max_tokens: 100,
        tools: [weatherTool],
        messages: [{ role: 'user', content: 'Weather in Paris?' }],
      })
      .finalMessage();

    expect(message.stop_reason).toBe('tool_use');
    const toolUse = message.content.find((block) => block.type === 'tool_use');
    expect(toolUse).toMatchObject({ type: 'tool_use', name: 'get_weather', input: args });
    expect(message.content[0]).toMatchObject({ type: 'text', text: 'Checking.' });
    expect(server.requests[0]?.tools).toEqual([
      {
        name: 'get_weather',
        description: 'Weather for a city',
        parameters: weatherTool.input_schema,
      },
    ]);
  });

  it('records the tool result of a round trip in the second request', async () => {
    const server = await start((request) =>
      request.messages.some((m) => m.toolResults.length > 0)
        ? { text: 'It is 21 degrees in Paris.' }
        : { toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris' } }] },
    );
    const client = anthropic(server);
    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'Weather in Paris?' }];
    const first = await client.messages.create({
      model: 'claude-test',
      max_tokens: 100,
      tools: [weatherTool],
      messages,
    });
    expect(first.stop_reason).toBe('tool_use');
    const toolUse = first.content.find((block) => block.type === 'tool_use');
    if (toolUse?.type !== 'tool_use') throw new Error('expected a tool_use block');
    expect(toolUse.input).toEqual({ city: 'Paris' });

    messages.push({ role: 'assistant', content: first.content });
    messages.push({
      role: 'user',
      content: [{ type: 'tool_result', tool_use_id: toolUse.id, content: '21C, sunny' }],
    });
    const second = await client.messages
      .stream({ model: 'claude-test', max_tokens: 100, tools: [weatherTool], messages })
      .finalMessage();

    expect(second.content).toMatchObject([{ type: 'text', text: 'It is 21 degrees in Paris.' }]);
    const recorded = server.requests[1]?.messages ?? [];
    expect(recorded[1]?.toolCalls).toEqual([
      { id: toolUse.id, name: 'get_weather', arguments: { city: 'Paris' } },
    ]);
    expect(recorded[2]).toMatchObject({
      role: 'user',
      toolResults: [{ toolCallId: toolUse.id, content: '21C, sunny', isError: false }],
    });
  });

  it('answers 429 in Anthropic shape so the SDK throws RateLimitError with retry-after', async () => {
    const server = await start([
      { error: { status: 429, type: 'rate_limit_error', message: 'slow down', retryAfterS: 7 } },
    ]);
    const error = await anthropic(server)
      .messages.create({
        model: 'claude-test',
        max_tokens: 10,
        messages: [{ role: 'user', content: 'hi' }],
      })
      .then(
        () => null,
        (e: unknown) => e,
      );

    expect(error).toBeInstanceOf(Anthropic.RateLimitError);
    const rateLimit = error as InstanceType<typeof Anthropic.RateLimitError>;
    expect(rateLimit.status).toBe(429);
    expect(rateLimit.headers?.get('retry-after')).toBe('7');
    expect(rateLimit.error).toEqual({
      type: 'error',
      error: { type: 'rate_limit_error', message: 'slow down' },
    });
  });

  it('surfaces an error event mid-stream as an APIError after partial text', async () => {
    const server = await start([
      {
        text: 'This reply will be cut off part way through.',
        failAfterChunks: 4,
        error: { status: 529, type: 'overloaded_error', message: 'Overloaded' },
      },
    ]);
    const stream = anthropic(server).messages.stream({
      model: 'claude-test',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }],
    });
    const deltas: string[] = [];
    stream.on('text', (delta) => deltas.push(delta));
    const error = await stream.finalMessage().then(
      () => null,
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(Anthropic.APIError);
    expect((error as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({
      error: { type: 'overloaded_error' },
    });
    expect(deltas.join('')).toBe('This reply');
  });

  it('surfaces a dropped connection mid-stream as an exception', async () => {
    const server = await start([
      { text: 'This reply will be cut off.', failAfterChunks: 3, failMode: 'destroy' },
    ]);
    const stream = anthropic(server).messages.stream({
      model: 'claude-test',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }],
    });
    await expect(stream.finalMessage()).rejects.toThrow(/terminated|socket|closed|aborted/i);
  });
});

describe('local model server: OpenAI Chat Completions API', () => {
  it('streams text and a final usage chunk when include_usage is set', async () => {
    const server = await start([
      { text: 'Hello from the local model.', usage: { inputTokens: 11, outputTokens: 6 } },
    ]);
    const stream = await openai(server).chat.completions.create({
      model: 'gpt-test',
      stream: true,
      stream_options: { include_usage: true },
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Say hello.' },
      ],
    });
    let text = '';
    let finishReason: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta.content ?? '';
      finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
      if (chunk.usage) usage = chunk.usage;
    }

    expect(text).toBe('Hello from the local model.');
    expect(chunks).toBeGreaterThan(3);
    expect(finishReason).toBe('stop');
    expect(usage).toEqual({ prompt_tokens: 11, completion_tokens: 6, total_tokens: 17 });
    expect(server.requests[0]).toMatchObject({
      provider: 'openai',
      model: 'gpt-test',
      messages: [
        { role: 'system', text: 'Be brief.' },
        { role: 'user', text: 'Say hello.' },
      ],
    });
  });

  it('streams a tool call whose argument deltas assemble into the scripted arguments', async () => {
    const args = { city: 'Paris', days: 3, units: ['celsius'] };
    const server = await start([{ toolCalls: [{ name: 'get_weather', arguments: args }] }]);
    const stream = await openai(server).chat.completions.create({
      model: 'gpt-test',
      stream: true,
      tools: [
        {
          type: 'function',
          function: { name: 'get_weather', parameters: weatherTool.input_schema },
        },
      ],
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
    });
    const calls: Array<{ id: string; name: string; arguments: string }> = [];
    let argumentDeltas = 0;
    let finishReason: string | null = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      finishReason = choice?.finish_reason ?? finishReason;
      for (const delta of choice?.delta.tool_calls ?? []) {
        const call = (calls[delta.index] ??= { id: '', name: '', arguments: '' });
        if (delta.id) call.id = delta.id;
        if (delta.function?.name) call.name = delta.function.name;
        if (delta.function?.arguments) {
          call.arguments += delta.function.arguments;
          argumentDeltas++;
        }
      }
    }

    expect(finishReason).toBe('tool_calls');
    expect(calls).toHaveLength(1);
    expect(calls[0]?.name).toBe('get_weather');
    expect(calls[0]?.id).not.toBe('');
    expect(argumentDeltas).toBeGreaterThan(1);
    expect(JSON.parse(calls[0]?.arguments ?? '')).toEqual(args);
    expect(server.requests[0]?.tools[0]).toMatchObject({ name: 'get_weather' });
  });

  it('answers non-streaming requests and records tool results', async () => {
    const server = await start([{ text: 'Sunny.' }]);
    const completion = await openai(server).chat.completions.create({
      model: 'gpt-test',
      messages: [
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            {
              id: 'call_1',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '21C' },
      ],
    });

    expect(completion.choices[0]?.message.content).toBe('Sunny.');
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(server.requests[0]?.messages.slice(1)).toEqual([
      {
        role: 'assistant',
        text: '',
        toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: { city: 'Paris' } }],
        toolResults: [],
      },
      {
        role: 'tool',
        text: '',
        toolCalls: [],
        toolResults: [{ toolCallId: 'call_1', content: '21C', isError: false }],
      },
    ]);
  });

  it('answers 500 in OpenAI shape so the SDK throws APIError with status 500', async () => {
    const server = await start([{ error: { status: 500, type: 'server_error', message: 'boom' } }]);
    const error = await openai(server)
      .chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => null,
        (e: unknown) => e,
      );

    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    const apiError = error as InstanceType<typeof OpenAI.APIError>;
    expect(apiError.status).toBe(500);
    expect(apiError.type).toBe('server_error');
    expect(apiError.message).toContain('boom');
  });

  it('surfaces an error chunk mid-stream as an APIError after partial text', async () => {
    const server = await start([{ text: 'This reply will be cut off.', failAfterChunks: 3 }]);
    const stream = await openai(server).chat.completions.create({
      model: 'gpt-test',
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    });
    let text = '';
    const error = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    })().then(
      () => null,
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).type).toBe('server_error');
    expect(text).toBe('This reply');
  });

  it('still fails a stream whose failAfterChunks is past the end, before [DONE]', async () => {
    const server = await start([{ text: 'Short.', failAfterChunks: 1000 }]);
    const stream = await openai(server).chat.completions.create({
      model: 'gpt-test',
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    });
    let text = '';
    await expect(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      })(),
    ).rejects.toBeInstanceOf(OpenAI.APIError);
    expect(text).toBe('Short.');
  });

  it('surfaces a dropped connection mid-stream as an exception', async () => {
    const server = await start([
      { text: 'This reply will be cut off.', failAfterChunks: 2, failMode: 'destroy' },
    ]);
    const stream = await openai(server).chat.completions.create({
      model: 'gpt-test',
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    });
    await expect(
      (async () => {
        for await (const _chunk of stream) {
          // drain
        }
      })(),
    ).rejects.toThrow(/terminated|socket|closed|aborted/i);
  });
});
