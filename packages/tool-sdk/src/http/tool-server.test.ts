import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { SignJWT, UnsecuredJWT } from 'jose';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from './tool-server.js';
import type { ToolServer } from './tool-server.js';
import { createTestClient, createTestSigner, readReply } from '../test-kit/index.js';
import type { TestSigner } from '../test-kit/index.js';
import { CALL_TOKEN_TYPE } from '../contract/index.js';

const logLines: string[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  }),
);

const spy = vi.fn();
const echo = defineTool({
  name: 'echo',
  description: 'Echo a message',
  input: z.object({ message: z.string(), options: z.object({ upper: z.boolean() }).optional() }),
  output: z.object({ message: z.string(), caller: z.string() }),
  handler: ({ message, options }, ctx) => {
    spy(message);
    return {
      message: options?.upper ? message.toUpperCase() : message,
      caller: ctx.caller?.sub ?? '',
    };
  },
});
const broken = defineTool({
  name: 'broken',
  description: 'Returns bad output',
  input: z.object({}),
  output: z.object({ n: z.number() }),
  handler: () => ({ n: 'nope' }) as unknown as { n: number },
});
const crash = defineTool({
  name: 'crash',
  description: 'Throws',
  input: z.object({}),
  handler: () => {
    throw new Error('db password=hunter2 leaked');
  },
});
const slow = defineTool({
  name: 'slow',
  description: 'Hangs until aborted',
  input: z.object({}),
  timeoutMs: 50,
  handler: (_i, ctx) =>
    new Promise<string>((_resolve, reject) =>
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)),
    ),
});
const refund = defineTool({
  name: 'refund',
  description: 'Fails with a declared code',
  input: z.object({ orderId: z.string() }),
  errors: { ORDER_NOT_FOUND: { retryable: false, description: 'no such order' } },
  handler: ({ orderId }, ctx) => ctx.fail('ORDER_NOT_FOUND', `No order ${orderId}`),
});
const progress = defineTool({
  name: 'progress',
  description: 'Reports progress and logs',
  input: z.object({ steps: z.number().int().max(10) }),
  handler: async ({ steps }, ctx) => {
    for (let i = 1; i <= steps; i++) await ctx.progress(i, steps, `step ${i}`);
    await ctx.log('info', { done: true });
    return 'finished';
  },
});

let signer: TestSigner;
let server: ToolServer;
let client: ReturnType<typeof createTestClient>;

beforeAll(async () => {
  signer = await createTestSigner();
  server = createToolServer({
    id: 'orders',
    tools: [echo, broken, crash, slow, refund, progress],
    auth: signer.auth,
    logger,
  });
  client = createTestClient(server, { signer, claims: { aud: 'orders', sub: 'user-1' } });
});
afterAll(() => server.close());

async function post(body: string, token?: string, headers: Record<string, string> = {}) {
  const h: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...headers,
  };
  if (token) h.authorization = `Bearer ${token}`;
  return server.fetch(new Request('http://localhost/mcp', { method: 'POST', headers: h, body }));
}
const callBody = (args: unknown = { message: 'hi' }, name = 'echo') =>
  JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name, arguments: args },
  });

describe('tool server', () => {
  it('lists tools with strict JSON Schemas', async () => {
    const tools = await client.listTools();
    const def = tools.find((t) => t.name === 'echo') as unknown as {
      inputSchema: Record<string, unknown>;
    };
    expect(def.inputSchema.additionalProperties).toBe(false);
    expect(
      (def.inputSchema.properties as Record<string, Record<string, unknown>>).options!
        .additionalProperties,
    ).toBe(false);
  });

  it('calls a tool and returns structuredContent plus a JSON text copy, with the verified caller', async () => {
    const r = await client.callTool('echo', { message: 'hi', options: { upper: true } });
    expect(r.structuredContent).toEqual({ message: 'HI', caller: 'user-1' });
    expect(r.result?.content).toEqual([
      { type: 'text', text: JSON.stringify({ message: 'HI', caller: 'user-1' }) },
    ]);
  });

  it('S11 rejects wrong types, unknown nested keys and __proto__ with INVALID_INPUT and the path', async () => {
    expect((await client.callTool('echo', { message: 1 })).error).toMatchObject({
      code: 'INVALID_INPUT',
      details: { path: ['message'] },
    });
    expect(
      (await client.callTool('echo', { message: 'a', options: { upper: true, x: 1 } })).error,
    ).toMatchObject({
      code: 'INVALID_INPUT',
      details: { path: ['options', 'x'] },
    });
    const r = await post(
      callBody(JSON.parse('{"message":"a","__proto__":{"polluted":true}}')),
      await signer.sign(callBody(JSON.parse('{"message":"a","__proto__":{"polluted":true}}')), {
        aud: 'orders',
      }),
    );
    const reply = await readReply(r);
    expect(JSON.stringify(reply.message)).toContain('INVALID_INPUT');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('S11 duplicate JSON keys are a 400 parse error', async () => {
    const body =
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a","message":"b"}}}';
    const r = await post(body, await signer.sign(body, { aud: 'orders' }));
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { code: number } }).error.code).toBe(-32700);
  });

  it('S13 output that breaks the schema is INVALID_OUTPUT, never success', async () => {
    const r = await client.callTool('broken');
    expect(r.result?.isError).toBe(true);
    expect(r.error?.code).toBe('INVALID_OUTPUT');
    expect(r.structuredContent).toBeUndefined();
  });

  it('S09 handler exceptions become INTERNAL with a correlation id and no secret or stack', async () => {
    const r = await client.callTool('crash');
    expect(r.error).toMatchObject({ code: 'INTERNAL', retryable: false });
    expect(r.error?.correlationId).toMatch(/[0-9a-f-]{36}/);
    const text = JSON.stringify(r.result);
    expect(text).not.toContain('hunter2');
    expect(text).not.toMatch(/at .*\.ts:\d+/);
    expect(logLines.join('')).not.toMatch(/at .*\.ts:\d+/);
    expect(logLines.join('')).toContain(r.error!.correlationId);
  });

  it('times out with TIMEOUT and aborts ctx.signal', async () => {
    const r = await client.callTool('slow');
    expect(r.error).toMatchObject({ code: 'TIMEOUT', retryable: true });
  });

  it('declared errors keep their code and retryability', async () => {
    const r = await client.callTool('refund', { orderId: 'ord_9' });
    expect(r.error).toMatchObject({
      code: 'ORDER_NOT_FOUND',
      retryable: false,
      message: 'No order ord_9',
    });
  });

  it('unknown tool is JSON-RPC -32602', async () => {
    const r = await client.request('tools/call', { name: 'nope', arguments: {} });
    expect(r.message.error?.code).toBe(-32602);
  });

  it('sends progress and logging notifications over SSE when asked', async () => {
    const r = await client.callTool('progress', { steps: 3 }, { progressToken: 'p1' });
    expect(
      r.notifications
        .filter((n) => n.method === 'notifications/progress')
        .map((n) => n.params.progress),
    ).toEqual([1, 2, 3]);
    expect(r.notifications.some((n) => n.method === 'notifications/message')).toBe(true);
    expect(r.result?.content).toEqual([{ type: 'text', text: 'finished' }]);
  });

  it('initialize and ping go through the MCP SDK', async () => {
    const r = await client.request('initialize', {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 't', version: '1' },
    });
    expect((r.message.result as { serverInfo: { name: string } }).serverInfo.name).toBe('orders');
  });
});

describe('call-token verification', () => {
  it('S01 unsigned / alg none token is 401 and the handler never runs', async () => {
    spy.mockClear();
    const body = callBody();
    const none = new UnsecuredJWT({
      aud: 'orders',
      iss: signer.issuer,
      sub: 'x',
      mth: 'tools/call',
      tool: 'echo',
    }).encode();
    expect((await post(body, none)).status).toBe(401);
    expect((await post(body)).status).toBe(401);
    expect(spy).not.toHaveBeenCalled();
  });

  it('S02 HS256 with the public key, jku/jwk headers, unknown kid are 401', async () => {
    spy.mockClear();
    const body = callBody();
    const hs = await new SignJWT({
      aud: 'orders',
      iss: signer.issuer,
      sub: 'x',
      jti: 'j',
      mth: 'tools/call',
      tool: 'echo',
    })
      .setProtectedHeader({ alg: 'HS256', typ: CALL_TOKEN_TYPE, kid: 'test-key' })
      .setIssuedAt()
      .setExpirationTime('30s')
      .sign(new TextEncoder().encode(JSON.stringify(signer.publicJwk)));
    expect((await post(body, hs)).status).toBe(401);
    expect(
      (
        await post(
          body,
          await signer.sign(body, { aud: 'orders' }, { jku: 'http://127.0.0.1:1/jwks' }),
        )
      ).status,
    ).toBe(401);
    const foreign = await createTestSigner();
    expect((await post(body, await foreign.sign(body, { aud: 'orders' }))).status).toBe(401);
    expect(spy).not.toHaveBeenCalled();
  });

  it('S03 expiry, lifetime and iat bounds are exact', async () => {
    const body = callBody();
    const now = Math.floor(Date.now() / 1000);
    const status = async (claims: Record<string, number>) =>
      (await post(body, await signer.sign(body, { aud: 'orders', ...claims }))).status;
    expect(await status({ iat: now - 66, exp: now - 6 })).toBe(401);
    expect(await status({ iat: now - 64, exp: now - 4 })).toBe(200);
    expect(await status({ iat: now, exp: now + 61 })).toBe(401);
    expect(await status({ iat: now + 30, exp: now + 60 })).toBe(401);
    expect(await status({ iat: now + 4, exp: now + 60 })).toBe(200);
  });

  it('S04 token for another server, wrong iss or typ is 401', async () => {
    const body = callBody();
    expect((await post(body, await signer.sign(body, { aud: 'billing' }))).status).toBe(401);
    expect((await post(body, await signer.sign(body, { aud: 'orders', iss: 'evil' }))).status).toBe(
      401,
    );
    expect(
      (await post(body, await signer.sign(body, { aud: 'orders' }, { typ: 'JWT' }))).status,
    ).toBe(401);
    expect(
      (await post(body, await signer.sign(body, { aud: 'orders' }, { typ: 'KEEL-CALL+JWT' })))
        .status,
    ).toBe(401);
  });

  it('S05 the same request replayed is executed once', async () => {
    spy.mockClear();
    const body = callBody({ message: 'once' });
    const token = await signer.sign(body, { aud: 'orders' });
    const statuses = await Promise.all(
      Array.from({ length: 50 }, () => post(body, token).then((r) => r.status)),
    );
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(spy).toHaveBeenCalledTimes(1);
  });

  it('S06 body changed after signing is rejected', async () => {
    spy.mockClear();
    const body = callBody({ message: 'pay 1' });
    const token = await signer.sign(body, { aud: 'orders' });
    for (const tampered of [
      body.replace('pay 1', 'pay 9'),
      JSON.stringify(JSON.parse(body), null, 2),
      body.replace('"message"', '"extra":1,"message"'),
    ]) {
      expect((await post(tampered, token)).status).toBe(401);
    }
    const swapped = callBody({ message: 'x' }, 'crash');
    expect(
      (await post(swapped, await signer.sign(swapped, { aud: 'orders', tool: 'echo' }))).status,
    ).toBe(401);
    expect(spy).not.toHaveBeenCalled();
  });

  it('S12 body over the cap is 413', async () => {
    const big = callBody({ message: 'x'.repeat(1024 * 1024 + 1) });
    expect((await post(big)).status).toBe(413);
  });

  it('S10 garbage gets JSON-RPC errors, never 5xx', async () => {
    const bodies = [
      '{',
      '[]',
      '[{"jsonrpc":"2.0","id":1,"method":"ping"}]',
      '{"jsonrpc":"1.0"}',
      '"x"',
      'null',
      '{"jsonrpc":"2.0","id":{},"method":"x"}',
    ];
    for (const body of bodies) {
      const r = await post(body, await signer.sign(body, { aud: 'orders', mth: 'x' }));
      expect(r.status).toBe(400);
    }
  });
});

describe('over real HTTP', () => {
  it('listens, enforces Host on loopback (S08) and closes gracefully', async () => {
    const local = createToolServer({ id: 'local', tools: [echo], auth: 'none', logger });
    const { url } = await local.listen(0);
    const body = callBody();
    const ok = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body,
    });
    expect(
      ((await ok.json()) as { result: { structuredContent: { message: string } } }).result
        .structuredContent.message,
    ).toBe('hi');
    const port = new URL(url).port;
    const evil = await new Promise<number>((resolve, reject) => {
      import('node:http').then(({ request }) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/mcp',
            method: 'POST',
            headers: { host: 'evil.example', 'content-type': 'application/json' },
          },
          (res) => resolve(res.statusCode ?? 0),
        );
        req.on('error', reject);
        req.end(body);
      });
    });
    expect(evil).toBe(403);
    const origin = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
      body,
    });
    expect(origin.status).toBe(403);
    expect((await fetch(url.replace('/mcp', '/healthz'))).status).toBe(200);
    await local.close();
  });
});
