/**
 * The demo: starts the example tool servers (orders, knowledge-base, express-mount) as real
 * processes with call-token auth on, serves the JWKS they trust, and makes real signed MCP calls
 * to them the way the gateway will. Later issues grow this into the whole stack.
 *
 *   make demo            (keeps running; Ctrl-C stops everything)
 *   make demo ARGS=--exit
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createTestSigner, readReply } from '@keel/tool-sdk/test';

const root = fileURLToPath(new URL('..', import.meta.url));
const signer = await createTestSigner({ issuer: 'keel-gateway' });
const jwks = createServer((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ keys: [signer.publicJwk] }));
}).listen(0, '127.0.0.1');
await new Promise((r) => jwks.once('listening', r));
const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;

const servers = [
  { id: 'orders', dir: 'examples/orders', port: 7101, path: '/mcp' },
  { id: 'kb', dir: 'examples/knowledge-base', port: 7102, path: '/mcp' },
  { id: 'inventory', dir: 'examples/express-mount', port: 7103, path: '/keel/mcp' },
];
const children: ChildProcess[] = [];
const stopAll = () => {
  for (const child of children) child.kill('SIGTERM');
  jwks.close();
};
process.on('SIGINT', () => {
  stopAll();
  process.exit(0);
});

await Promise.all(
  servers.map(
    (s) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
          cwd: `${root}/${s.dir}`,
          env: {
            ...process.env,
            PORT: String(s.port),
            KEEL_JWKS_URL: jwksUrl,
            KEEL_ISSUER: signer.issuer,
          },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        children.push(child);
        child.stdout!.on('data', (chunk: Buffer) => {
          const text = String(chunk);
          if (text.includes('tool server at') || text.includes('MCP at')) {
            process.stdout.write(`[${s.id}] ${text}`);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`${s.id} exited with ${code}`)));
      }),
  ),
);

let nextId = 1;
async function call(
  serverId: string,
  label: string,
  method: string,
  params: unknown,
  claims: Record<string, unknown> = {},
) {
  const s = servers.find((x) => x.id === serverId)!;
  const body = JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params });
  const token = await signer.sign(body, { aud: serverId, sub: 'demo-user', ...claims });
  const response = await fetch(`http://127.0.0.1:${s.port}${s.path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
    },
    body,
  });
  const reply = await readReply(response);
  const shown = JSON.stringify(reply.message.result ?? reply.message.error);
  console.log(
    `\n▸ ${serverId}: ${label}\n  HTTP ${reply.status} ${shown.length > 400 ? `${shown.slice(0, 400)}…` : shown}`,
  );
  for (const n of reply.notifications)
    console.log(`  (notification) ${n.method} ${JSON.stringify(n.params)}`);
}

const tool = (name: string, args: unknown, meta?: unknown) => ({
  name,
  arguments: args,
  ...(meta ? { _meta: meta } : {}),
});
await call('orders', 'tools/list', 'tools/list', {});
await call(
  'orders',
  'get_order ord_1004',
  'tools/call',
  tool('get_order', { orderId: 'ord_1004' }),
);
await call(
  'orders',
  'get_order ord_9999 → declared error',
  'tools/call',
  tool('get_order', { orderId: 'ord_9999' }),
);
await call(
  'orders',
  'list_customer_orders with a typo → INVALID_INPUT',
  'tools/call',
  tool('list_customer_orders', { customerId: 'cus_001', limt: 2 }),
);
await call(
  'orders',
  'refund_order (idempotency key r-1)',
  'tools/call',
  tool('refund_order', { orderId: 'ord_1003', reason: 'arrived damaged' }),
  { idk: 'r-1' },
);
await call(
  'orders',
  'refund_order again with r-1 → the saved result, no second refund',
  'tools/call',
  tool('refund_order', { orderId: 'ord_1003', reason: 'arrived damaged' }),
  { idk: 'r-1' },
);
await call(
  'kb',
  'search_articles "refund take"',
  'tools/call',
  tool('search_articles', { query: 'refund to my payment method', limit: 1 }),
);
await call(
  'kb',
  'reindex with progress',
  'tools/call',
  tool('reindex', {}, { progressToken: 'demo' }),
);
await call(
  'inventory',
  'check_stock (tools mounted in an existing express app)',
  'tools/call',
  tool('check_stock', { sku: 'SKU-MUG' }),
);
await call(
  'orders',
  'a token for another server → 401',
  'tools/call',
  tool('get_order', { orderId: 'ord_1004' }),
  { aud: 'kb' },
);

if (process.argv.includes('--exit') || process.env.CI) {
  stopAll();
} else {
  console.log('\nServers keep running (ports 7101-7103); Ctrl-C stops them.');
}
