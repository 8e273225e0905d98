import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { gatewayConfigSchema } from './config/gateway-config.js';
import { createGateway } from './gateway.js';
import type { Gateway } from './gateway.js';
import { freePort, startEverythingServer } from './test-support/everything-server.js';
import type { EverythingServer } from './test-support/everything-server.js';

// A third-party MCP server (the reference "everything" server, stateful Streamable HTTP, no
// Keel auth) behind a real gateway: sessions, progress relay and results pass through unchanged.
describe('gateway in front of @modelcontextprotocol/server-everything', () => {
  let everything: EverythingServer;
  let gateway: Gateway;
  let url: string;

  beforeAll(async () => {
    everything = await startEverythingServer();
    const config = gatewayConfigSchema.parse({
      gateway: { port: await freePort() },
      auth: { development: true },
      servers: [{ id: 'everything', urls: [everything.url], auth: { mode: 'none' } }],
    });
    gateway = createGateway({ config, logger: pino({ level: 'silent' }), env: {} });
    url = (await gateway.listen()).url;
    await gateway.start();
  });

  afterAll(async () => {
    await gateway?.close({ graceMs: 0 });
    await everything?.stop();
  });

  async function rpc(method: string, params: Record<string, unknown> = {}) {
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const text = await response.text();
    const messages = (
      text.startsWith('{')
        ? [JSON.parse(text)]
        : text
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => JSON.parse(l.slice(6)))
    ) as Array<{
      method?: string;
      params?: Record<string, unknown>;
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON read in assertions
      result?: any;
    }>;
    return { status: response.status, messages, last: messages.at(-1)! };
  }

  it('lists its tools under everything__ names and calls them through its own session', async () => {
    const names = ((await rpc('tools/list')).last.result.tools as Array<{ name: string }>).map(
      (t) => t.name,
    );
    expect(names).toEqual(
      expect.arrayContaining(['everything__echo', 'everything__get-sum', 'everything__get-env']),
    );
    const sum = await rpc('tools/call', { name: 'everything__get-sum', arguments: { a: 2, b: 3 } });
    expect(sum.last.result.isError).toBeFalsy();
    expect(JSON.stringify(sum.last.result.content)).toContain('5');
    const echo = await rpc('tools/call', {
      name: 'everything__echo',
      arguments: { message: 'through the gateway' },
    });
    expect(JSON.stringify(echo.last.result.content)).toContain('through the gateway');
  });

  it('relays its progress notifications under the caller’s own token', async () => {
    const reply = await rpc('tools/call', {
      name: 'everything__trigger-long-running-operation',
      arguments: { duration: 0.3, steps: 3 },
      _meta: { progressToken: 'caller-token' },
    });
    const progress = reply.messages.filter((m) => m.method === 'notifications/progress');
    expect(progress.length).toBeGreaterThanOrEqual(1);
    for (const p of progress) expect(p.params?.progressToken).toBe('caller-token');
    expect(reply.last.result.isError).toBeFalsy();
  });

  it('its environment tool shows only the scrubbed environment: no gateway secret reaches it', async () => {
    const env = await rpc('tools/call', { name: 'everything__get-env', arguments: {} });
    const text = JSON.stringify(env.last.result);
    expect(text).toContain('PATH');
    expect(text).not.toMatch(/REDIS_URL|KEEL_|authorization/i);
  });
});
