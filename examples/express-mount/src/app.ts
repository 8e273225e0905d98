import express from 'express';
import type { Express } from 'express';
import { z } from 'zod';
import { createToolServer, defineTool } from '@keel/tool-sdk';
import type { ToolServer, ToolServerOptions } from '@keel/tool-sdk';

/** An existing backend (a small inventory service) that also serves its logic as MCP tools. */
export function createInventoryApp(options: Pick<ToolServerOptions, 'auth' | 'logger'> = {}): {
  app: Express;
  tools: ToolServer;
} {
  const stock = new Map([
    ['SKU-MUG', 12],
    ['SKU-TEE', 0],
    ['SKU-CAP', 7],
  ]);

  const checkStock = defineTool({
    name: 'check_stock',
    title: 'Check stock',
    description: 'How many units of a SKU are in stock.',
    input: z.object({ sku: z.string().regex(/^SKU-[A-Z]+$/) }),
    output: z.object({ sku: z.string(), inStock: z.number().int() }),
    errors: { UNKNOWN_SKU: { retryable: false, description: 'No product has this SKU' } },
    annotations: { readOnly: true },
    handler: ({ sku }, ctx) => {
      const inStock = stock.get(sku);
      return inStock === undefined
        ? ctx.fail('UNKNOWN_SKU', `No product ${sku}`)
        : { sku, inStock };
    },
  });

  const tools = createToolServer({
    id: 'inventory',
    name: 'Inventory',
    version: '0.1.0',
    tools: [checkStock],
    ...options,
  });
  const app = express();
  // The tool router reads the raw body itself (it hashes the exact bytes): mount it before parsers.
  app.use('/keel', tools.router());
  app.use(express.json());
  app.get('/api/stock/:sku', (req, res) => {
    const inStock = stock.get(req.params.sku);
    if (inStock === undefined) res.status(404).json({ error: 'unknown sku' });
    else res.json({ sku: req.params.sku, inStock });
  });
  return { app, tools };
}
