import { describe, expect, it } from 'vitest';
import type { LocalModelReply, LocalModelServer } from '../testing/local-model-server.js';
import { createAnthropicClient } from './anthropic-client.js';
import { streamWithFallback } from './fallback-client.js';
import type { ModelAttempt } from './fallback-client.js';
import { ModelCallError } from './model-provider.js';
import type { ModelClient, ModelEvent, ModelRequest } from './model-provider.js';
import { createOpenAIClient } from './openai-client.js';
import { useLocalModelServers } from './provider-test-kit.js';

const startServer = useLocalModelServers();
const start = (script: LocalModelReply[], chunkSize = 5): Promise<LocalModelServer> =>
  startServer(script, chunkSize);

const request: ModelRequest = {
  system: '',
  messages: [{ role: 'user', content: [{ type: 'text', text: 'hello' }] }],
  tools: [],
  maxOutputTokens: 100,
};

async function drain(
  stream: AsyncIterable<ModelEvent>,
): Promise<{ events: ModelEvent[]; error?: unknown }> {
  const events: ModelEvent[] = [];
  try {
    for await (const event of stream) events.push(event);
    return { events };
  } catch (error) {
    return { events, error };
  }
}

function text(events: readonly ModelEvent[]): string {
  return events.map((e) => (e.type === 'text-delta' ? e.text : '')).join('');
}

/** A clock that advances 10 ms per reading. */
function tickingClock(): () => number {
  let t = 1_000;
  return () => (t += 10);
}

const providers = {
  anthropic: (server: LocalModelServer, model: string): ModelClient =>
    createAnthropicClient({ model, apiKey: 'k', baseURL: server.anthropicBaseUrl }),
  openai: (server: LocalModelServer, model: string): ModelClient =>
    createOpenAIClient({ model, apiKey: 'k', baseURL: server.openaiBaseUrl }),
};

describe.each(Object.entries(providers))('streamWithFallback with %s', (provider, make) => {
  it('429 on the first entry → the second entry serves; one request each', async () => {
    const first = await start([
      { error: { status: 429, type: 'rate_limit_error', message: 'slow' } },
    ]);
    const second = await start([{ text: 'from the second' }]);
    const seen: ModelAttempt[] = [];
    const stream = streamWithFallback([make(first, 'primary'), make(second, 'backup')], request, {
      onAttempt: (a) => seen.push(a),
      now: tickingClock(),
    });
    const { events, error } = await drain(stream);
    expect(error).toBeUndefined();
    expect(text(events)).toBe('from the second');
    expect(events.at(-1)?.type).toBe('finish');
    expect(first.requests).toHaveLength(1);
    expect(second.requests).toHaveLength(1);
    expect(stream.served?.entryIndex).toBe(1);
    expect(stream.served?.client.model).toBe('backup');
    expect(stream.attempts).toEqual(seen);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatchObject({
      entryIndex: 0,
      provider,
      model: 'primary',
      error: { code: 'RATE_LIMITED', retryable: true },
    });
    expect(seen[0]?.firstEventMs).toBeUndefined();
    expect(seen[1]).toMatchObject({ entryIndex: 1, model: 'backup' });
    expect(seen[1]?.error).toBeUndefined();
    expect(seen[1]?.firstEventMs).toBeGreaterThan(seen[1]?.startMs ?? Infinity);
    expect(seen[1]?.endMs).toBeGreaterThan(seen[1]?.firstEventMs ?? Infinity);
  });

  it('500 before any content → the next entry', async () => {
    const first = await start([{ error: { status: 500, type: 'api_error', message: 'boom' } }]);
    const second = await start([{ text: 'ok' }]);
    const stream = streamWithFallback([make(first, 'a'), make(second, 'b')], request);
    const { events, error } = await drain(stream);
    expect(error).toBeUndefined();
    expect(text(events)).toBe('ok');
    expect(stream.attempts.map((a) => a.error?.code)).toEqual(['UNAVAILABLE', undefined]);
  });

  it('an error mid-stream after text does not fall back; the error surfaces', async () => {
    const first = await start([{ text: 'partial answer that fails', failAfterChunks: 4 }]);
    const second = await start([{ text: 'must not be used' }]);
    const stream = streamWithFallback([make(first, 'a'), make(second, 'b')], request);
    const { events, error } = await drain(stream);
    expect(error).toBeInstanceOf(ModelCallError);
    expect(text(events).length).toBeGreaterThan(0);
    expect(events.some((e) => e.type === 'finish')).toBe(false);
    expect(second.requests).toHaveLength(0);
    expect(stream.served?.entryIndex).toBe(0);
    expect(stream.attempts).toHaveLength(1);
    expect(stream.attempts[0]?.error?.code).toBeDefined();
    expect(stream.attempts[0]?.firstEventMs).toBeDefined();
  });

  it('a non-transient 400 does not fall back', async () => {
    const first = await start([
      { error: { status: 400, type: 'invalid_request_error', message: 'max_tokens too large' } },
    ]);
    const second = await start([{ text: 'must not be used' }]);
    const stream = streamWithFallback([make(first, 'a'), make(second, 'b')], request);
    const { error } = await drain(stream);
    expect(error).toBeInstanceOf(ModelCallError);
    const failure = error as ModelCallError;
    expect(failure.transient).toBe(false);
    expect(failure.keel).toMatchObject({ code: 'INVALID_INPUT', retryable: false });
    expect(failure.keel.message).toContain('max_tokens too large');
    expect(second.requests).toHaveLength(0);
    expect(first.requests).toHaveLength(1);
  });

  it('when every entry fails transiently, the last error is thrown with every attempt kept', async () => {
    const first = await start([{ error: { status: 429, type: 'rate_limit_error', message: 'x' } }]);
    const second = await start([
      { error: { status: 503, type: 'overloaded_error', message: 'y' } },
    ]);
    const stream = streamWithFallback([make(first, 'a'), make(second, 'b')], request);
    const { error } = await drain(stream);
    const failure = error as ModelCallError;
    expect(failure).toBeInstanceOf(ModelCallError);
    expect(failure.keel.code).toBe('UNAVAILABLE');
    expect((failure.keel.details as { attempts: unknown[] }).attempts).toMatchObject([
      { code: 'RATE_LIMITED', status: 429 },
      { code: 'UNAVAILABLE', status: 503 },
    ]);
    expect(first.requests).toHaveLength(1);
    expect(second.requests).toHaveLength(1);
  });

  it('an abort is not retried on the next entry and is recorded as CANCELLED', async () => {
    const first = await start([{ text: 'y'.repeat(300) }], 2);
    const second = await start([{ text: 'must not be used' }]);
    const controller = new AbortController();
    const stream = streamWithFallback([make(first, 'a'), make(second, 'b')], {
      ...request,
      signal: controller.signal,
    });
    const events: ModelEvent[] = [];
    const error = await (async () => {
      for await (const event of stream) {
        events.push(event);
        if (events.length === 2) controller.abort(new Error('stopped'));
      }
    })().catch((e: unknown) => e);
    expect(error).toBe(controller.signal.reason);
    expect(events).toHaveLength(2);
    expect(second.requests).toHaveLength(0);
    expect(stream.attempts).toMatchObject([{ entryIndex: 0, error: { code: 'CANCELLED' } }]);
  });
});

describe('streamWithFallback across providers', () => {
  it('falls back from Anthropic (529 overloaded) to OpenAI', async () => {
    const first = await start([
      { error: { status: 529, type: 'overloaded_error', message: 'busy' } },
    ]);
    const second = await start([{ text: 'openai here' }]);
    const stream = streamWithFallback(
      [providers.anthropic(first, 'claude'), providers.openai(second, 'gpt')],
      request,
    );
    const { events, error } = await drain(stream);
    expect(error).toBeUndefined();
    expect(text(events)).toBe('openai here');
    expect(stream.served?.client.provider).toBe('openai');
    expect(stream.attempts[0]?.error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
  });

  it('a consumer that stops early closes the entry stream and records a successful attempt', async () => {
    const server = await start([{ text: 'z'.repeat(200) }], 2);
    const stream = streamWithFallback([providers.openai(server, 'gpt')], request);
    for await (const event of stream) {
      if (event.type === 'text-delta') break;
    }
    expect(stream.attempts).toHaveLength(1);
    expect(stream.attempts[0]?.error).toBeUndefined();
    expect(stream.attempts[0]?.firstEventMs).toBeDefined();
    expect(server.requests).toHaveLength(1);
  });

  it('a connection refused is transient and moves on', async () => {
    const dead = await start([]);
    await dead.close();
    const live = await start([{ text: 'alive' }]);
    const stream = streamWithFallback(
      [providers.anthropic(dead, 'a'), providers.anthropic(live, 'b')],
      request,
    );
    const { events, error } = await drain(stream);
    expect(error).toBeUndefined();
    expect(text(events)).toBe('alive');
    expect(stream.attempts[0]?.error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
  });
});
