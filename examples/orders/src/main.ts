// The orders tool server: `pnpm start` (PORT, REDIS_URL, KEEL_* from the environment).
import { createToolServer } from '@keel/tool-sdk';
import { openOrdersDb } from './db.js';
import { ordersTools } from './tools.js';

const db = openOrdersDb(process.env.ORDERS_DB ?? ':memory:');
const server = createToolServer({
  id: 'orders',
  name: 'Orders',
  version: '0.1.0',
  tools: ordersTools(db),
});
const { url } = await server.listen(
  Number(process.env.PORT ?? 7101),
  process.env.HOST ?? '127.0.0.1',
);
process.stdout.write(`orders tool server at ${url}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => void server.close().then(() => process.exit(0)));
}
