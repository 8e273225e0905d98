import { createHash, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { pino } from 'pino';
import { createToolServer, defineTool } from '@keel/tool-sdk';
import type { ToolServer } from '@keel/tool-sdk';
import { freePort } from '@keel/tool-sdk/test';
// The orchestrator has no dependency on @keel/gateway; its tests reach the real gateway source.
import { createGateway, gatewayConfigSchema } from '../../../gateway/src/index.js';
import type { Gateway } from '../../../gateway/src/index.js';
import { createMcpToolGateway } from './mcp-tool-gateway.js';
import type { ToolCallContext, ToolGateway } from './tool-gateway.js';
import { ToolGatewayError } from './tool-gateway-error.js';

const silent = pino({ level: 'silent' });
const sha = (key: string) => createHash('sha256').update(key).digest('hex');
const SERVICE_KEY = `svc-${randomUUID()}`;
const ADMIN_KEY = `admin-${randomUUID()}`;

const context = (overrides: Partial<ToolCallContext> = {}): ToolCallContext => ({
  user: 'user-42',
  tenant: 'acme',
  sessionId: 'sess-1',
  idempotencyKey: `sess-1:${randomUUID()}`,
  ...overrides,
});

describe('createMcpToolGateway against a real gateway and real tool servers', () => {
  let gateway: Gateway;
  let gatewayPort: number;
  let gatewayUrl: string;
  let orders: ToolServer;
  let billing: ToolServer | undefined;
  let client: ToolGateway;
  const posts: string[] = [];
  let slowStarted: () => void = () => undefined;
  const slowAborted = vi.fn();

  const countingFetch: typeof fetch = async (input, init) => {
    if (init?.method === 'POST' && typeof init.body === 'string') {
      posts.push((JSON.parse(init.body) as { method: string }).method);
    }
    return fetch(input, init);
  };

  function toolServer(
    id: string,
    jwksPort: number,
    tools: Parameters<typeof createToolServer>[0]['tools'],
  ) {
    return createToolServer({
      id,
      logger: silent,
      auth: {
        jwksUrl: `http://127.0.0.1:${jwksPort}/.well-known/jwks.json`,
        issuer: 'keel-gateway',
      },
      tools,
    });
  }

  beforeAll(async () => {
    gatewayPort = await freePort();
    orders = toolServer('orders', gatewayPort, [
      defineTool({
        name: 'whoami',
        description: 'Echo who is calling',
        input: z.object({ note: z.string().optional() }),
        output: z.object({
          sub: z.string(),
          tnt: z.string().optional(),
          sid: z.string().optional(),
          idk: z.string().optional(),
        }),
        handler: async (_input, ctx) => {
          await ctx.progress(1, 2, 'half');
          await ctx.progress(2, 2, 'done');
          return {
            sub: ctx.caller?.sub ?? '',
            ...(ctx.caller?.tnt ? { tnt: ctx.caller.tnt } : {}),
            ...(ctx.caller?.sid ? { sid: ctx.caller.sid } : {}),
            ...(ctx.idempotencyKey ? { idk: ctx.idempotencyKey } : {}),
          };
        },
      }),
      defineTool({
        name: 'get_order',
        description: 'Look up an order',
        input: z.object({ id: z.string() }),
        output: z.object({ id: z.string(), status: z.string() }),
        errors: { ORDER_NOT_FOUND: { retryable: false, description: 'No such order' } },
        handler: async ({ id }, ctx) => {
          if (id === 'missing') return ctx.fail('ORDER_NOT_FOUND', `No order ${id}`);
          return { id, status: 'paid' };
        },
      }),
      defineTool({
        name: 'slow',
        description: 'Waits until cancelled',
        input: z.object({}),
        handler: async (_input, ctx) => {
          slowStarted();
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 20_000);
            ctx.signal.addEventListener('abort', () => {
              slowAborted();
              clearTimeout(timer);
              resolve();
            });
          });
          return 'finished';
        },
      }),
    ]);
    const ordersUrl = (await orders.listen(0)).url;

    const config = gatewayConfigSchema.parse({
      gateway: { port: gatewayPort },
      auth: {
        adminKeyEnv: 'KEEL_ADMIN_KEY',
        principals: [{ id: 'orchestrator', kind: 'service', keySha256: sha(SERVICE_KEY) }],
      },
      servers: [{ id: 'orders', urls: [ordersUrl] }],
    });
    gateway = createGateway({ config, logger: silent, env: { KEEL_ADMIN_KEY: ADMIN_KEY } });
    gatewayUrl = (await gateway.listen(gatewayPort)).url;
    await gateway.start();
    client = createMcpToolGateway({
      url: gatewayUrl,
      apiKey: SERVICE_KEY,
      fetch: countingFetch,
      // Long: in these tests only list_changed may refresh the catalog.
      catalogTtlMs: 3_600_000,
      timeoutMs: 10_000,
    });
  }, 30_000);

  afterAll(async () => {
    await client.close();
    await gateway.close({ graceMs: 100 });
    await orders.close({ graceMs: 100 });
    await billing?.close({ graceMs: 100 });
  });

  it('lists the gateway catalog under namespaced names, and caches it', async () => {
    const tools = await client.listTools();
    const names = tools.map((t) => t.name);
    expect(names).toEqual(
      expect.arrayContaining(['orders__whoami', 'orders__get_order', 'orders__slow']),
    );
    const whoami = tools.find((t) => t.name === 'orders__whoami')!;
    expect(whoami.description).toBe('Echo who is calling');
    expect(whoami.inputSchema).toMatchObject({ type: 'object' });
    const lists = posts.filter((m) => m === 'tools/list').length;
    await client.listTools();
    await client.listTools();
    expect(posts.filter((m) => m === 'tools/list').length).toBe(lists);
  });

  it('passes user, tenant, session and idempotency key in _meta, and relays progress', async () => {
    const progress: Array<[number, number | undefined, string | undefined]> = [];
    const ctx = context({
      idempotencyKey: 'sess-1:call-7',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      onProgress: (p, total, message) => progress.push([p, total, message]),
    });
    const outcome = await client.callTool('orders__whoami', {}, ctx);
    expect(outcome).toEqual({
      ok: true,
      output: { sub: 'user-42', tnt: 'acme', sid: 'sess-1', idk: 'sess-1:call-7' },
    });
    expect(progress).toEqual([
      [1, 2, 'half'],
      [2, 2, 'done'],
    ]);
  });

  it("returns a tool's own error code as { ok: false } without throwing", async () => {
    const outcome = await client.callTool('orders__get_order', { id: 'missing' }, context());
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.error).toMatchObject({ code: 'ORDER_NOT_FOUND', retryable: false });
    expect(outcome.error.correlationId).toBeTruthy();
    const good = await client.callTool('orders__get_order', { id: 'o1' }, context());
    expect(good).toEqual({ ok: true, output: { id: 'o1', status: 'paid' } });
  });

  it('bad arguments and unknown tools come back as errors, not throws', async () => {
    const bad = await client.callTool('orders__get_order', { id: 7 }, context());
    expect(bad).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    const unknown = await client.callTool('orders__nope', {}, context());
    expect(unknown.ok).toBe(false);
  });

  it('an abort cancels the call (CANCELLED) and reaches the tool', async () => {
    const started = new Promise<void>((resolve) => (slowStarted = resolve));
    const controller = new AbortController();
    const pending = client.callTool('orders__slow', {}, context({ signal: controller.signal }));
    await started;
    controller.abort();
    const outcome = await pending;
    expect(outcome).toMatchObject({ ok: false, error: { code: 'CANCELLED', retryable: false } });
    await vi.waitFor(() => expect(slowAborted).toHaveBeenCalled(), { timeout: 5_000 });
    // An already aborted signal sends nothing.
    const before = posts.length;
    const again = await client.callTool(
      'orders__slow',
      {},
      context({ signal: AbortSignal.abort() }),
    );
    expect(again).toMatchObject({ ok: false, error: { code: 'CANCELLED' } });
    expect(posts.length).toBe(before);
  });

  it('drops the cached catalog on notifications/tools/list_changed', async () => {
    expect((await client.listTools()).some((t) => t.name.startsWith('billing__'))).toBe(false);
    billing = toolServer('billing', gatewayPort, [
      defineTool({
        name: 'get_invoice',
        description: 'An invoice',
        input: z.object({ id: z.string() }),
        handler: async ({ id }) => `invoice ${id}`,
      }),
    ]);
    const billingUrl = (await billing.listen(0)).url;
    const put = await fetch(`http://127.0.0.1:${gatewayPort}/admin/servers/billing`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'billing', urls: [billingUrl] }),
    });
    expect(put.status).toBe(201);
    // The TTL is an hour: only the notification can explain a fresh list.
    await vi.waitFor(
      async () =>
        expect((await client.listTools()).map((t) => t.name)).toContain('billing__get_invoice'),
      { timeout: 10_000, interval: 100 },
    );
    const outcome = await client.callTool('billing__get_invoice', { id: 'i-1' }, context());
    expect(outcome).toMatchObject({ ok: true, output: [{ type: 'text', text: 'invoice i-1' }] });
  });

  it('a wrong API key is UNAUTHENTICATED, not retryable', async () => {
    const wrong = createMcpToolGateway({
      url: gatewayUrl,
      apiKey: 'not-the-key',
      timeoutMs: 5_000,
    });
    try {
      const outcome = await wrong.callTool('orders__whoami', {}, context());
      expect(outcome).toMatchObject({
        ok: false,
        error: { code: 'UNAUTHENTICATED', retryable: false },
      });
      expect(JSON.stringify(outcome)).not.toContain('not-the-key');
      await expect(wrong.listTools()).rejects.toSatisfy(
        (e: unknown) => ToolGatewayError.isInstance(e) && e.code === 'UNAUTHENTICATED',
      );
      expect(await wrong.ping()).toBe(false);
    } finally {
      await wrong.close();
    }
  });

  it('ping says whether the gateway answers', async () => {
    expect(await client.ping()).toBe(true);
  });
});

describe('createMcpToolGateway when the gateway is down or dies', () => {
  it('a gateway that is not listening: UNAVAILABLE (retryable), never a throw; then reconnects', async () => {
    const port = await freePort();
    const down = createMcpToolGateway({
      url: `http://127.0.0.1:${port}/mcp`,
      apiKey: SERVICE_KEY,
      timeoutMs: 5_000,
    });
    let late: Gateway | undefined;
    let tools: ToolServer | undefined;
    try {
      const outcome = await down.callTool('orders__whoami', {}, context());
      expect(outcome).toMatchObject({ ok: false, error: { code: 'UNAVAILABLE', retryable: true } });
      await expect(down.listTools()).rejects.toSatisfy(
        (e: unknown) => ToolGatewayError.isInstance(e) && e.code === 'UNAVAILABLE' && e.retryable,
      );
      expect(await down.ping()).toBe(false);

      // The gateway comes up on that port: the same client connects on its next use.
      tools = createToolServer({
        id: 'echo',
        logger: silent,
        auth: { jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`, issuer: 'keel-gateway' },
        tools: [
          defineTool({
            name: 'ping_me',
            description: 'pong',
            input: z.object({}),
            handler: async () => 'pong',
          }),
        ],
      });
      const echoUrl = (await tools.listen(0)).url;
      late = createGateway({
        config: gatewayConfigSchema.parse({
          gateway: { port },
          auth: {
            principals: [{ id: 'orchestrator', kind: 'service', keySha256: sha(SERVICE_KEY) }],
          },
          servers: [{ id: 'echo', urls: [echoUrl] }],
        }),
        logger: silent,
        env: {},
      });
      await late.listen(port);
      await late.start();
      expect(await down.callTool('echo__ping_me', {}, context())).toMatchObject({
        ok: true,
        output: [{ type: 'text', text: 'pong' }],
      });
    } finally {
      await down.close();
      await late?.close({ graceMs: 0 });
      await tools?.close({ graceMs: 0 });
    }
  });

  /**
   * A stand-in for the gateway process (only for failures a healthy gateway cannot be made to
   * show): it answers the MCP handshake itself and hands `tools/call` to `onCall`.
   */
  async function standIn(
    onCall: (
      msg: { id: number; params?: { _meta?: { progressToken?: number } } },
      res: ServerResponse,
    ) => void,
  ) {
    const server: Server = createServer((req, res) => {
      if (req.method === 'GET') {
        res.statusCode = 405;
        res.end();
        return;
      }
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const msg = JSON.parse(body) as {
          id?: number;
          method: string;
          params?: { _meta?: { progressToken?: number } };
        };
        if (msg.id === undefined) {
          res.statusCode = 202;
          res.end();
          return;
        }
        if (msg.method === 'initialize') {
          res.setHeader('content-type', 'application/json');
          res.end(
            JSON.stringify({
              jsonrpc: '2.0',
              id: msg.id,
              result: {
                protocolVersion: '2025-11-25',
                capabilities: { tools: {} },
                serverInfo: { name: 'stand-in', version: '1' },
              },
            }),
          );
          return;
        }
        if (msg.method === 'tools/call') onCall({ ...msg, id: msg.id }, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`;
    return {
      url,
      async close() {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  }

  it('a connection that breaks mid-stream after the call was sent is INDETERMINATE, without waiting for the timeout', async () => {
    const server = await standIn((msg, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        `event: message\ndata: ${JSON.stringify({
          jsonrpc: '2.0',
          method: 'notifications/progress',
          params: { progressToken: msg.params?._meta?.progressToken ?? 0, progress: 1 },
        })}\n\n`,
        () => setTimeout(() => res.socket?.destroy(), 20),
      );
    });
    const client = createMcpToolGateway({
      url: server.url,
      apiKey: SERVICE_KEY,
      timeoutMs: 20_000,
    });
    try {
      const progress = vi.fn();
      const started = Date.now();
      const outcome = await client.callTool('x__y', {}, context({ onProgress: progress }));
      expect(outcome).toMatchObject({
        ok: false,
        error: { code: 'INDETERMINATE', retryable: false },
      });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(progress).toHaveBeenCalledWith(1, undefined, undefined);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('a connection dropped before any reply header is INDETERMINATE too', async () => {
    const server = await standIn((_msg, res) => res.socket?.destroy());
    const client = createMcpToolGateway({
      url: server.url,
      apiKey: SERVICE_KEY,
      timeoutMs: 20_000,
    });
    try {
      const outcome = await client.callTool('x__y', {}, context());
      expect(outcome).toMatchObject({
        ok: false,
        error: { code: 'INDETERMINATE', retryable: false },
      });
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('isError without a KeelError in _meta is UPSTREAM_ERROR with the text', async () => {
    const server = await standIn((msg, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          jsonrpc: '2.0',
          id: msg.id,
          result: { isError: true, content: [{ type: 'text', text: 'disk on fire' }] },
        }),
      );
    });
    const client = createMcpToolGateway({ url: server.url, apiKey: SERVICE_KEY });
    try {
      const outcome = await client.callTool('x__y', {}, context());
      expect(outcome).toMatchObject({
        ok: false,
        error: { code: 'UPSTREAM_ERROR', message: 'disk on fire', retryable: false },
      });
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('no reply within timeoutMs is TIMEOUT (retryable)', async () => {
    const server = await standIn(() => undefined);
    const client = createMcpToolGateway({ url: server.url, apiKey: SERVICE_KEY, timeoutMs: 300 });
    try {
      const outcome = await client.callTool('x__y', {}, context());
      expect(outcome).toMatchObject({ ok: false, error: { code: 'TIMEOUT', retryable: true } });
    } finally {
      await client.close();
      await server.close();
    }
  });
});
