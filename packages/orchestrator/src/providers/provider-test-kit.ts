/**
 * Shared fixtures of the provider tests: local model servers closed after each test, a
 * request, a tool, and stream collection. Test-only (imported by `*.test.ts`).
 */
import { afterEach } from 'vitest';
import { createLocalModelServer } from '../testing/local-model-server.js';
import type { LocalModelScript, LocalModelServer } from '../testing/local-model-server.js';
import type { ModelEvent, ModelRequest } from './model-provider.js';

/** Registers cleanup in the calling test file; returns a starter of scripted servers. */
export function useLocalModelServers(): (
  script: LocalModelScript,
  chunkSize?: number,
) => Promise<LocalModelServer> {
  const servers: LocalModelServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });
  return async (script, chunkSize = 5) => {
    const server = await createLocalModelServer({ script, chunkSize });
    servers.push(server);
    return server;
  };
}

export const weatherTool = {
  name: 'weather__get',
  description: 'Weather for a city',
  inputSchema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

export function request(overrides: Partial<ModelRequest> = {}): ModelRequest {
  return {
    system: 'Be brief.',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }] }],
    tools: [],
    maxOutputTokens: 200,
    ...overrides,
  };
}

export async function collect(stream: AsyncIterable<ModelEvent>): Promise<ModelEvent[]> {
  const events: ModelEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}
