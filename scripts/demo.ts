/**
 * The demo: starts a tool server built with @keel/tool-sdk on loopback, with call-token auth on,
 * and shows real signed calls to it (success, a declared error, bad input, a replayed token).
 * Later issues grow this into the whole stack (gateway, orchestrator, chat UI).
 */
import { z } from 'zod';
import { pino } from 'pino';
import { createToolServer, defineTool } from '@keel/tool-sdk';
import { createTestSigner, readReply } from '@keel/tool-sdk/test';

const orders = new Map([
  ['ord_1001', { id: 'ord_1001', customerId: 'cus_001', totalCents: 4599, status: 'paid' }],
  ['ord_1002', { id: 'ord_1002', customerId: 'cus_002', totalCents: 1250, status: 'shipped' }],
]);

const getOrder = defineTool({
  name: 'get_order',
  description: 'Look up one order by id',
  input: z.object({ orderId: z.string().regex(/^ord_\d+$/) }),
  output: z.object({
    id: z.string(),
    customerId: z.string(),
    totalCents: z.number().int(),
    status: z.string(),
  }),
  errors: { ORDER_NOT_FOUND: { retryable: false, description: 'No order has this id' } },
  annotations: { readOnly: true },
  handler: ({ orderId }, ctx) =>
    orders.get(orderId) ?? ctx.fail('ORDER_NOT_FOUND', `No order ${orderId}`),
});

const signer = await createTestSigner({ issuer: 'keel-gateway' });
const server = createToolServer({
  id: 'orders',
  tools: [getOrder],
  auth: signer.auth,
  logger: pino({ level: 'warn' }),
});
const port = Number(process.env.PORT ?? 7101);
const { url } = await server.listen(port);
console.log(`orders tool server: ${url} (call tokens verified, audience "orders")\n`);

async function call(label: string, body: string, token?: string) {
  const t = token ?? (await signer.sign(body, { aud: 'orders', sub: 'demo-user' }));
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${t}`,
    },
    body,
  });
  const reply = await readReply(response);
  console.log(
    `▸ ${label}\n  HTTP ${reply.status} ${JSON.stringify(reply.message.result ?? reply.message.error)}\n`,
  );
  return t;
}
const rpc = (method: string, params: unknown) =>
  JSON.stringify({ jsonrpc: '2.0', id: 1, method, params });

await call('tools/list', rpc('tools/list', {}));
await call(
  'get_order ord_1001',
  rpc('tools/call', { name: 'get_order', arguments: { orderId: 'ord_1001' } }),
);
await call(
  'get_order ord_9999 (declared error)',
  rpc('tools/call', { name: 'get_order', arguments: { orderId: 'ord_9999' } }),
);
await call(
  'get_order with an unknown key (INVALID_INPUT)',
  rpc('tools/call', { name: 'get_order', arguments: { orderId: 'ord_1001', x: 1 } }),
);
const body = rpc('tools/call', { name: 'get_order', arguments: { orderId: 'ord_1002' } });
const token = await call('get_order ord_1002', body);
await call('the same signed request replayed (401)', body, token);

if (process.argv.includes('--exit') || process.env.CI) {
  await server.close();
} else {
  console.log('Server keeps running; Ctrl-C to stop.');
  process.on('SIGINT', () => void server.close().then(() => process.exit(0)));
}
