import { describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createTestSigner, readReply } from '@keel/tool-sdk/test';
import { createInventoryApp } from './app.js';

describe('express-mount example', () => {
  it('serves the app route and signed MCP calls side by side', async () => {
    const signer = await createTestSigner();
    const { app, tools } = createInventoryApp({
      auth: signer.auth,
      logger: pino({ level: 'silent' }),
    });
    const http = app.listen(0, '127.0.0.1');
    await new Promise((r) => http.once('listening', r));
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    try {
      expect(await (await fetch(`${base}/api/stock/SKU-MUG`)).json()).toEqual({
        sku: 'SKU-MUG',
        inStock: 12,
      });
      const body = JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'check_stock', arguments: { sku: 'SKU-CAP' } },
      });
      const reply = await readReply(
        await fetch(`${base}/keel/mcp`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            authorization: `Bearer ${await signer.sign(body, { aud: 'inventory' })}`,
          },
          body,
        }),
      );
      expect((reply.message.result as { structuredContent: unknown }).structuredContent).toEqual({
        sku: 'SKU-CAP',
        inStock: 7,
      });
    } finally {
      http.close();
      await tools.close();
    }
  });
});
