import { describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { z } from 'zod';
import { pino } from 'pino';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from './tool-server.js';

const logger = pino({ level: 'silent' });
const body = (name: string) =>
  JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {} } });
const post = (url: string, payload: string, signal?: AbortSignal) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: payload,
    ...(signal ? { signal } : {}),
  });

describe('server lifecycle over real HTTP', () => {
  it('close() lets in-flight calls finish and refuses new ones', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let started: () => void = () => {};
    const running = new Promise<void>((r) => (started = r));
    const slow = defineTool({
      name: 'slow',
      description: 'd',
      input: z.object({}),
      handler: async () => {
        started();
        await gate;
        return 'finished';
      },
    });
    const server = createToolServer({ id: 'life', tools: [slow], auth: 'none', logger });
    const { url } = await server.listen(0);
    const inFlight = post(url, body('slow'));
    await running;
    const closed = server.close({ graceMs: 5_000 });
    const refused = await post(url, body('slow')).catch(() => undefined);
    if (refused) expect(refused.status).toBe(503);
    release();
    const reply = (await (await inFlight).json()) as { result: { content: unknown } };
    expect(reply.result.content).toEqual([{ type: 'text', text: 'finished' }]);
    await closed;
  });

  it('a client that drops the connection aborts ctx.signal', async () => {
    let aborted: () => void = () => {};
    const wasAborted = new Promise<void>((r) => (aborted = r));
    let hangStarted: () => void = () => {};
    const hanging = new Promise<void>((r) => (hangStarted = r));
    const hang = defineTool({
      name: 'hang',
      description: 'd',
      input: z.object({}),
      timeoutMs: 30_000,
      handler: (_i, ctx) =>
        new Promise<string>((_res, reject) => {
          hangStarted();
          ctx.signal.addEventListener('abort', () => {
            aborted();
            reject(ctx.signal.reason);
          });
        }),
    });
    const server = createToolServer({ id: 'drop', tools: [hang], auth: 'none', logger });
    const { url } = await server.listen(0);
    const controller = new AbortController();
    const call = post(url, body('hang'), controller.signal).catch(() => 'dropped');
    await hanging;
    controller.abort();
    await wasAborted;
    expect(await call).toBe('dropped');
    await server.close();
  });

  it('S12 a chunked body over the cap is refused with 413 without reading it all', async () => {
    const server = createToolServer({
      id: 'big',
      tools: [],
      auth: 'none',
      logger,
      limits: { maxBodyBytes: 1024 },
    });
    const { port } = await server.listen(0);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/mcp',
          method: 'POST',
          headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        },
        (res) => resolve(res.statusCode ?? 0),
      );
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write('x'.repeat(512));
      req.end();
    });
    expect(status).toBe(413);
    await server.close();
  });
});
