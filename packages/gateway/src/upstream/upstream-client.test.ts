import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createToolServer, defineTool } from '@keel/tool-sdk';
import { createTestSigner } from '@keel/tool-sdk/test';
import type { TestSigner } from '@keel/tool-sdk/test';
import { GatewayError } from '../errors/gateway-error.js';
import { startEverythingServer } from '../test-support/everything-server.js';
import type { EverythingServer } from '../test-support/everything-server.js';
import { createUpstreamClient } from './upstream-client.js';
import type { UpstreamNotification } from './upstream-client.js';

const silent = { level: 'silent' } as const;

describe('upstream client', () => {
  let signer: TestSigner;
  let toolServer: ReturnType<typeof createToolServer>;
  let toolUrl: string;
  let everything: EverythingServer;
  let runs = 0;
  const client = createUpstreamClient();

  beforeAll(async () => {
    signer = await createTestSigner();
    const { pino } = await import('pino');
    toolServer = createToolServer({
      id: 'orders',
      auth: signer.auth,
      logger: pino(silent),
      tools: [
        defineTool({
          name: 'count',
          description: 'Counts calls and reports progress',
          input: z.object({ n: z.number() }),
          output: z.object({ doubled: z.number() }),
          handler: async ({ n }, ctx) => {
            runs++;
            await ctx.progress(1, 2, 'half');
            return { doubled: n * 2 };
          },
        }),
      ],
    });
    toolUrl = (await toolServer.listen(0)).url;
    everything = await startEverythingServer();
  }, 30_000);

  afterAll(async () => {
    client.close();
    await toolServer.close({ graceMs: 100 });
    await everything.stop();
  });

  const credentials = (body: Uint8Array) =>
    signer.sign(body, { aud: 'orders' }).then((t) => `Bearer ${t}`);

  it('calls a signed tool-sdk server and relays its progress notifications', async () => {
    const notes: UpstreamNotification[] = [];
    const reply = await client.request({
      replica: toolUrl,
      message: {
        method: 'tools/call',
        params: { name: 'count', arguments: { n: 21 }, _meta: { progressToken: 'p-1' } },
      },
      credentials,
      signal: AbortSignal.timeout(5_000),
      onNotification: (n) => notes.push(n),
    });
    expect(reply).toMatchObject({ result: { structuredContent: { doubled: 42 } } });
    expect(notes).toEqual([
      {
        method: 'notifications/progress',
        params: { progressToken: 'p-1', progress: 1, total: 2, message: 'half' },
      },
    ]);
    expect(runs).toBe(1);
  });

  it('relays JSON-RPC errors (unknown tool) as the upstream answer', async () => {
    const reply = await client.request({
      replica: toolUrl,
      message: { method: 'tools/call', params: { name: 'nope', arguments: {} } },
      credentials,
      signal: AbortSignal.timeout(5_000),
    });
    expect(reply).toMatchObject({ error: { code: -32602 } });
  });

  it('a refused credential is a non-retryable UNAVAILABLE the upstream answered', async () => {
    const error = await client
      .request({
        replica: toolUrl,
        message: { method: 'tools/list' },
        credentials: () => 'Bearer nope',
        signal: AbortSignal.timeout(5_000),
      })
      .catch((e: unknown) => e);
    expect(GatewayError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ code: 'UNAVAILABLE', retryable: false, delivery: 'yes' });
  });

  it('opens a session with a stateful third-party server and renews it when the upstream forgets it', async () => {
    const list = await client.request({
      replica: everything.url,
      message: { method: 'tools/list' },
      credentials: () => undefined,
      signal: AbortSignal.timeout(5_000),
    });
    expect('result' in list && JSON.stringify(list.result)).toContain('get-sum');
    const sum = await client.request({
      replica: everything.url,
      message: { method: 'tools/call', params: { name: 'get-sum', arguments: { a: 2, b: 3 } } },
      credentials: () => undefined,
      signal: AbortSignal.timeout(5_000),
    });
    expect(JSON.stringify(sum)).toContain('5');

    // The upstream restarts and forgets every session: the client initializes again.
    await everything.stop();
    everything = await startEverythingServer({ port: everything.port });
    const again = await client.request({
      replica: everything.url,
      message: { method: 'tools/call', params: { name: 'get-sum', arguments: { a: 4, b: 4 } } },
      credentials: () => undefined,
      signal: AbortSignal.timeout(5_000),
    });
    expect(JSON.stringify(again)).toContain('8');
  }, 30_000);

  it('says nothing was delivered when the connection is refused', async () => {
    const error = await client
      .request({
        replica: 'http://127.0.0.1:1/mcp',
        message: { method: 'tools/list' },
        credentials: () => undefined,
        signal: AbortSignal.timeout(5_000),
      })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'UNAVAILABLE', delivery: 'no', retryable: true });
  });

  it('says the request may have run when the reply is lost, and aborts on the signal', async () => {
    let received = 0;
    const server: Server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        received++;
        const body = received === 1 ? '' : null;
        // initialize gets an answer; the call after it hangs, then the socket is cut.
        if (body === '') {
          res.setHeader('content-type', 'application/json');
          res.end('{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25"}}');
        } else if (received === 2) {
          res.statusCode = 202;
          res.end();
        } else if (received === 3) {
          res.socket?.destroy();
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address();
    const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/mcp`;
    const lost = await client
      .request({
        replica: url,
        message: { method: 'tools/call', params: { name: 'x' } },
        credentials: () => undefined,
        signal: AbortSignal.timeout(5_000),
      })
      .catch((e: unknown) => e);
    expect(lost).toMatchObject({ code: 'UNAVAILABLE', delivery: 'maybe' });

    const controller = new AbortController();
    const pending = client
      .request({
        replica: url,
        message: { method: 'tools/call', params: { name: 'x' } },
        credentials: () => undefined,
        signal: controller.signal,
      })
      .catch((e: unknown) => e);
    setTimeout(() => controller.abort(), 50);
    expect(await pending).toMatchObject({ code: 'CANCELLED', delivery: 'maybe' });
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
});
