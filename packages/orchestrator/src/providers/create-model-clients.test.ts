import { afterEach, describe, expect, it } from 'vitest';
import type { ModelEntry } from '../config/models-config.js';
import { createLocalModelServer } from '../testing/local-model-server.js';
import type { LocalModelServer } from '../testing/local-model-server.js';
import { createModelClients, PLACEHOLDER_API_KEY } from './create-model-clients.js';
import { streamWithFallback } from './fallback-client.js';
import { ModelCallError } from './model-provider.js';
import type { ModelEvent, ModelRequest } from './model-provider.js';

const servers: LocalModelServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

const prices = { inputPerMTok: 1, outputPerMTok: 2 };
const request: ModelRequest = {
  system: '',
  messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
  tools: [],
  maxOutputTokens: 50,
};

async function drain(stream: AsyncIterable<ModelEvent>): Promise<ModelEvent[]> {
  const events: ModelEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

/** A fetch that records each request's authorization headers, then forwards. */
function recordingFetch(seen: Array<{ url: string; key: string | null; auth: string | null }>) {
  return async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const headers = new Headers(init?.headers);
    seen.push({
      url: String(input instanceof Request ? input.url : input),
      key: headers.get('x-api-key'),
      auth: headers.get('authorization'),
    });
    return fetch(input, init);
  };
}

describe('createModelClients', () => {
  it('builds the alias entries in order, keys from the injected env, baseUrl as baseURL', async () => {
    const server = await createLocalModelServer({ script: [{ text: 'one' }, { text: 'two' }] });
    servers.push(server);
    const entries: ModelEntry[] = [
      {
        provider: 'anthropic',
        model: 'claude-a',
        apiKeyEnv: 'MY_ANTHROPIC',
        baseUrl: server.anthropicBaseUrl,
        prices,
        contextWindow: 1000,
      },
      {
        provider: 'openai',
        model: 'gpt-b',
        baseUrl: server.openaiBaseUrl,
        prices,
        contextWindow: 2000,
      },
    ];
    const seen: Array<{ url: string; key: string | null; auth: string | null }> = [];
    const clients = createModelClients({ models: { fast: entries } }, 'fast', {
      env: { MY_ANTHROPIC: 'ak-1', OPENAI_API_KEY: 'ok-2' },
      fetch: recordingFetch(seen),
    });
    expect(clients.map((c) => [c.provider, c.model, c.entry.contextWindow])).toEqual([
      ['anthropic', 'claude-a', 1000],
      ['openai', 'gpt-b', 2000],
    ]);
    await drain(clients[0]!.stream(request));
    await drain(clients[1]!.stream(request));
    // This SDK version sends the key as x-api-key or as a bearer token, depending on the key.
    expect(seen[0]?.key === 'ak-1' || seen[0]?.auth === 'Bearer ak-1').toBe(true);
    expect(seen[0]?.url).toContain(server.url);
    expect(seen[1]).toMatchObject({ auth: 'Bearer ok-2' });
    expect(server.requests.map((r) => [r.provider, r.model])).toEqual([
      ['anthropic', 'claude-a'],
      ['openai', 'gpt-b'],
    ]);
  });

  it('a local server with no key set gets a placeholder key', async () => {
    const server = await createLocalModelServer({ script: [{ text: 'local' }] });
    servers.push(server);
    const seen: Array<{ url: string; key: string | null; auth: string | null }> = [];
    const [client] = createModelClients(
      {
        models: {
          local: [
            {
              provider: 'openai',
              model: 'llama',
              baseUrl: server.openaiBaseUrl,
              prices,
              contextWindow: 8000,
            },
          ],
        },
      },
      'local',
      { env: {}, fetch: recordingFetch(seen) },
    );
    const events = await drain(client!.stream(request));
    expect(events.at(-1)?.type).toBe('finish');
    expect(seen[0]?.auth).toBe(`Bearer ${PLACEHOLDER_API_KEY}`);
  });

  it('no key and no baseUrl: a non-transient UNAUTHENTICATED naming the variable, and no fallback past it', async () => {
    const server = await createLocalModelServer({ script: [{ text: 'backup' }] });
    servers.push(server);
    const clients = createModelClients(
      {
        models: {
          smart: [
            {
              provider: 'anthropic',
              model: 'claude-s',
              apiKeyEnv: 'KEEL_ANTHROPIC_KEY',
              prices,
              contextWindow: 1,
            },
            {
              provider: 'openai',
              model: 'gpt',
              baseUrl: server.openaiBaseUrl,
              prices,
              contextWindow: 1,
            },
          ],
        },
      },
      'smart',
      { env: { KEEL_ANTHROPIC_KEY: '' } },
    );
    const error = await drain(clients[0]!.stream(request)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelCallError);
    expect((error as ModelCallError).transient).toBe(false);
    expect((error as ModelCallError).keel).toMatchObject({
      code: 'UNAUTHENTICATED',
      retryable: false,
    });
    expect((error as ModelCallError).keel.message).toContain('KEEL_ANTHROPIC_KEY');
    await expect(drain(streamWithFallback(clients, request))).rejects.toBeInstanceOf(
      ModelCallError,
    );
    expect(server.requests).toHaveLength(0);
  });

  it('the provider default variable is used when apiKeyEnv is absent', async () => {
    const [client] = createModelClients(
      { models: { x: [{ provider: 'openai', model: 'gpt', prices, contextWindow: 1 }] } },
      'x',
      { env: {} },
    );
    const error = (await drain(client!.stream(request)).catch((e: unknown) => e)) as ModelCallError;
    expect(error.keel.message).toContain('OPENAI_API_KEY');
  });

  it('an unknown alias is a NOT_FOUND error', () => {
    expect(() => createModelClients({ models: {} }, 'nope', { env: {} })).toThrow(ModelCallError);
    expect(() => createModelClients({ models: {} }, 'toString', { env: {} })).toThrow(
      ModelCallError,
    );
  });
});
