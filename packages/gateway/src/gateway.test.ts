import { createHash, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { pino } from 'pino';
import { createRedisClient, createToolServer, defineTool } from '@keel/tool-sdk';
import type { Caller, ToolServer } from '@keel/tool-sdk';
import { gatewayConfigSchema } from './config/gateway-config.js';
import { createGateway } from './gateway.js';
import type { Gateway } from './gateway.js';

const silent = pino({ level: 'silent' });
const sha = (key: string) => createHash('sha256').update(key).digest('hex');
const IDE_KEY = `ide-${randomUUID()}`;
const SERVICE_KEY = `svc-${randomUUID()}`;
const NARROW_KEY = `narrow-${randomUUID()}`;

describe('gateway (in-process, real tool servers, real Redis)', () => {
  const redis = createRedisClient('redis://127.0.0.1:6379', () => undefined);
  const prefix = `keel:test:gw:${randomUUID()}`;
  let gateway: Gateway;
  let gatewayUrl: string;
  let orders: ToolServer;
  let plain: Server;
  const seenCallers: Caller[] = [];
  const plainHeaders: IncomingHttpHeaders[] = [];
  const plainTools: Array<{ name: string; inputSchema: { type: 'object' } }> = [];

  beforeAll(async () => {
    // Port of the gateway first: the tool server trusts its JWKS.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const gatewayPort = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));

    orders = createToolServer({
      id: 'orders',
      logger: silent,
      auth: {
        jwksUrl: `http://127.0.0.1:${gatewayPort}/.well-known/jwks.json`,
        issuer: 'keel-gateway',
      },
      tools: [
        defineTool({
          name: 'get_order',
          description: 'Look up an order',
          input: z.object({ id: z.string() }),
          output: z.object({ id: z.string(), status: z.string() }),
          errors: { ORDER_NOT_FOUND: { retryable: false, description: 'No such order' } },
          handler: async ({ id }, ctx) => {
            if (ctx.caller) seenCallers.push(ctx.caller);
            if (id === 'missing') return ctx.fail('ORDER_NOT_FOUND', `No order ${id}`);
            await ctx.progress(1, 1, 'found');
            return { id, status: 'paid' };
          },
        }),
      ],
    });
    const ordersUrl = (await orders.listen(0)).url;

    // A third-party style server without auth that records what reaches it.
    plainTools.push({ name: 'Echo Tool!', inputSchema: { type: 'object' } });
    plain = createServer((req, res) => {
      plainHeaders.push(req.headers);
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const msg = JSON.parse(body) as {
          id?: number;
          method: string;
          params?: { arguments?: { grow?: boolean } };
        };
        if (msg.method === 'tools/call' && msg.params?.arguments?.grow) {
          // Grow the tool list and say so inside the reply's SSE stream, as stateful servers do.
          plainTools.push({ name: 'added_later', inputSchema: { type: 'object' } });
          res.setHeader('content-type', 'text/event-stream');
          const event = (m: unknown) => `event: message\ndata: ${JSON.stringify(m)}\n\n`;
          res.end(
            event({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' }) +
              event({
                jsonrpc: '2.0',
                id: msg.id,
                result: { content: [{ type: 'text', text: 'grown' }] },
              }),
          );
          return;
        }
        res.setHeader('content-type', 'application/json');
        if (msg.id === undefined) {
          res.statusCode = 202;
          res.end();
          return;
        }
        const result =
          msg.method === 'initialize'
            ? {
                protocolVersion: '2025-11-25',
                capabilities: { tools: {} },
                serverInfo: { name: 'p', version: '1' },
              }
            : msg.method === 'tools/list'
              ? { tools: plainTools }
              : { content: [{ type: 'text', text: 'echoed' }] };
        res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
      });
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const plainUrl = `http://127.0.0.1:${(plain.address() as { port: number }).port}/mcp`;

    const config = gatewayConfigSchema.parse({
      gateway: { port: gatewayPort },
      auth: {
        principals: [
          { id: 'alice-ide', keySha256: sha(IDE_KEY) },
          { id: 'orchestrator', kind: 'service', keySha256: sha(SERVICE_KEY) },
          { id: 'narrow', keySha256: sha(NARROW_KEY), tools: ['plain__*'] },
        ],
      },
      servers: [
        {
          id: 'orders',
          urls: [ordersUrl],
          tools: { get_order: { rateLimits: [{ per: 'user', limit: 5, windowMs: 60_000 }] } },
        },
        { id: 'plain', urls: [plainUrl], auth: { mode: 'none' } },
      ],
    });
    gateway = createGateway({ config, logger: silent, redis, keyPrefix: prefix });
    gatewayUrl = (await gateway.listen(gatewayPort)).url;
    await gateway.start();
  }, 30_000);

  afterAll(async () => {
    await gateway.close({ graceMs: 100 });
    await orders.close({ graceMs: 100 });
    plain.closeAllConnections();
    await new Promise<void>((r) => plain.close(() => r()));
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  async function rpc(
    key: string | undefined,
    method: string,
    params: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) {
    const response = await fetch(gatewayUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...headers,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const text = await response.text();
    const data = text.startsWith('{')
      ? [JSON.parse(text)]
      : text
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => JSON.parse(l.slice(6)));
    return { status: response.status, messages: data, last: data.at(-1) };
  }

  it('lists every tool under namespaced names, third-party names made legal', async () => {
    const { last } = await rpc(IDE_KEY, 'tools/list');
    const names = (last.result.tools as Array<{ name: string }>).map((t) => t.name);
    expect(names).toContain('orders__get_order');
    expect(names.some((n) => n.startsWith('plain__Echo_Tool_'))).toBe(true);
    const tool = (
      last.result.tools as Array<{ name: string; _meta: Record<string, unknown> }>
    ).find((t) => t.name === 'orders__get_order')!;
    expect(tool._meta['dev.keel/originalName']).toBe('get_order');
  });

  it('filters the catalog and calls by what a key may use', async () => {
    const { last } = await rpc(NARROW_KEY, 'tools/list');
    const names = (last.result.tools as Array<{ name: string }>).map((t) => t.name);
    expect(names.every((n) => n.startsWith('plain__'))).toBe(true);
    const denied = await rpc(NARROW_KEY, 'tools/call', {
      name: 'orders__get_order',
      arguments: { id: 'o1' },
    });
    expect(denied.last.error.code).toBe(-32602);
  });

  it('refuses missing and unknown keys with 401', async () => {
    expect((await rpc(undefined, 'tools/list')).status).toBe(401);
    expect((await rpc('not-a-key', 'tools/list')).status).toBe(401);
  });

  it('signs each call for its server; identity in _meta only counts from a service principal', async () => {
    const meta = { 'dev.keel/user': 'user-42', 'dev.keel/tenant': 'acme' };
    const asService = await rpc(SERVICE_KEY, 'tools/call', {
      name: 'orders__get_order',
      arguments: { id: 'o1' },
      _meta: meta,
    });
    expect(asService.last.result.structuredContent).toEqual({ id: 'o1', status: 'paid' });
    expect(seenCallers.at(-1)).toMatchObject({ sub: 'user-42', tnt: 'acme', iss: 'keel-gateway' });

    await rpc(IDE_KEY, 'tools/call', {
      name: 'orders__get_order',
      arguments: { id: 'o2' },
      _meta: meta,
    });
    expect(seenCallers.at(-1)?.sub).toBe('alice-ide');
    expect(seenCallers.at(-1)?.tnt).toBeUndefined();
  });

  it('refreshes a server’s tools when it sends notifications/tools/list_changed', async () => {
    const list = async () =>
      ((await rpc(IDE_KEY, 'tools/list')).last.result.tools as Array<{ name: string }>).map(
        (t) => t.name,
      );
    const echo = (await list()).find((n) => n.startsWith('plain__'))!;
    expect(await list()).not.toContain('plain__added_later');
    const reply = await rpc(IDE_KEY, 'tools/call', { name: echo, arguments: { grow: true } });
    expect(reply.last.result.content[0].text).toBe('grown');
    // No periodic refresh is due (catalog.refreshMs default): only the notification explains it.
    await vi.waitFor(async () => expect(await list()).toContain('plain__added_later'), {
      timeout: 5_000,
    });
  });

  it('S04: never forwards the inbound Authorization upstream', async () => {
    plainHeaders.length = 0;
    const names = (
      (await rpc(IDE_KEY, 'tools/list')).last.result.tools as Array<{ name: string }>
    ).map((t) => t.name);
    const echo = names.find((n) => n.startsWith('plain__'))!;
    const reply = await rpc(IDE_KEY, 'tools/call', { name: echo, arguments: {} });
    expect(reply.last.result.content[0].text).toBe('echoed');
    expect(plainHeaders.length).toBeGreaterThan(0);
    for (const headers of plainHeaders) {
      expect(headers.authorization).toBeUndefined();
      expect(JSON.stringify(headers)).not.toContain(IDE_KEY);
    }
  });

  it('relays progress under the caller’s own token and passes tool errors through', async () => {
    const progress = await rpc(SERVICE_KEY, 'tools/call', {
      name: 'orders__get_order',
      arguments: { id: 'o3' },
      _meta: { progressToken: 'mine-7', 'dev.keel/user': 'p-user' },
    });
    expect(progress.messages[0]).toMatchObject({
      method: 'notifications/progress',
      params: { progressToken: 'mine-7', progress: 1, total: 1, message: 'found' },
    });
    const failed = await rpc(SERVICE_KEY, 'tools/call', {
      name: 'orders__get_order',
      arguments: { id: 'missing' },
      _meta: { 'dev.keel/user': 'p-user' },
    });
    expect(failed.last.result.isError).toBe(true);
    expect(failed.last.result._meta['dev.keel/error']).toMatchObject({
      code: 'ORDER_NOT_FOUND',
      retryable: false,
    });
  });

  it('rate limits per user in Redis with RATE_LIMITED and retryAfterMs', async () => {
    const user = `rl-${randomUUID()}`;
    const codes: string[] = [];
    for (let i = 0; i < 7; i++) {
      const r = await rpc(SERVICE_KEY, 'tools/call', {
        name: 'orders__get_order',
        arguments: { id: `o${i}` },
        _meta: { 'dev.keel/user': user },
      });
      codes.push(r.last.result.isError ? r.last.result._meta['dev.keel/error'].code : 'ok');
      if (r.last.result.isError)
        expect(r.last.result._meta['dev.keel/error'].retryAfterMs).toBeGreaterThan(0);
    }
    expect(codes).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'RATE_LIMITED', 'RATE_LIMITED']);
  });

  it('serves its JWKS, health, readiness and metrics', async () => {
    const base = gatewayUrl.replace(/\/mcp$/, '');
    const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as {
      keys: unknown[];
    };
    expect(jwks.keys.length).toBeGreaterThan(0);
    expect(JSON.stringify(jwks)).not.toContain('"d"');
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('keel_gateway_calls_total');
  });

  it('answers initialize and ping itself, and rejects garbage as JSON-RPC errors', async () => {
    const init = await rpc(IDE_KEY, 'initialize', {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 't', version: '1' },
    });
    expect(init.last.result).toMatchObject({
      protocolVersion: '2025-06-18',
      capabilities: { tools: { listChanged: true } },
    });
    expect((await rpc(IDE_KEY, 'ping')).last.result).toEqual({});
    expect((await rpc(IDE_KEY, 'resources/list')).last.error.code).toBe(-32601);
    const bad = await fetch(gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${IDE_KEY}` },
      body: '{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}',
    });
    expect(bad.status).toBe(400);
  });
});
