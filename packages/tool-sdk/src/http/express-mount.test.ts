import { describe, expect, it } from 'vitest';
import express from 'express';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { pino } from 'pino';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from './tool-server.js';
import { createTestSigner } from '../test-kit/index.js';

describe('mounted in an existing express app', () => {
  it('serves /tools/mcp next to the app routes, with auth, over real HTTP', async () => {
    const signer = await createTestSigner();
    const ping = defineTool({
      name: 'ping_app',
      description: 'd',
      input: z.object({}),
      handler: () => 'pong',
    });
    const tools = createToolServer({
      id: 'app',
      tools: [ping],
      auth: signer.auth,
      logger: pino({ level: 'silent' }),
    });
    const app = express();
    app.use('/tools', tools.router());
    app.use(express.json());
    app.get('/api/hello', (_req, res) => void res.json({ hello: 'world' }));
    const http = app.listen(0, '127.0.0.1');
    await new Promise((r) => http.once('listening', r));
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    try {
      expect(await (await fetch(`${base}/api/hello`)).json()).toEqual({ hello: 'world' });
      const body = JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'ping_app', arguments: {} },
      });
      const response = await fetch(`${base}/tools/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${await signer.sign(body, { aud: 'app' })}`,
        },
        body,
      });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { result: { content: unknown } }).result.content).toEqual([
        { type: 'text', text: 'pong' },
      ]);
      expect((await fetch(`${base}/tools/mcp`, { method: 'POST', body })).status).toBe(401);
      expect((await fetch(`${base}/tools/healthz`)).status).toBe(200);
    } finally {
      http.close();
      await tools.close();
    }
  });
});
