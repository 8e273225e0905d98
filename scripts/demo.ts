/**
 * The demo: the example tool servers (orders, knowledge-base, express-mount) run as real
 * processes behind a real gateway process. The tool servers verify the gateway's signed call
 * tokens against its JWKS; the demo talks only to the gateway's one MCP endpoint, once as an
 * agent service (passing end-user context) and once as an IDE API key limited to two tools.
 *
 *   make demo            (keeps running; Ctrl-C stops everything)
 *   make demo ARGS=--exit
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readReply } from '@keel/tool-sdk/test';

const root = fileURLToPath(new URL('..', import.meta.url));
const GATEWAY_PORT = Number(process.env.GATEWAY_PORT ?? 7070);
const gatewayUrl = `http://127.0.0.1:${GATEWAY_PORT}/mcp`;
// Demo keys: the config holds only their sha256.
const AGENT_KEY = 'keel-demo-agent-key';
const IDE_KEY = 'keel-demo-ide-key';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const servers = [
  { id: 'orders', dir: 'examples/orders', port: 7101, path: '/mcp' },
  { id: 'kb', dir: 'examples/knowledge-base', port: 7102, path: '/mcp' },
  { id: 'inventory', dir: 'examples/express-mount', port: 7103, path: '/keel/mcp' },
];
const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'keel-demo-'));
const stopAll = () => {
  for (const child of children) child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  stopAll();
  process.exit(0);
});

/** Start `args` under Node with tsx; resolve when a stdout line contains `ready`. */
function startProcess(
  name: string,
  cwd: string,
  args: string[],
  env: Record<string, string>,
  ready: string,
) {
  return new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    let seen = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      const text = String(chunk);
      if (!seen && text.includes(ready)) {
        seen = true;
        const url = /http[^\s"]*\/mcp/.exec(text)?.[0] ?? '';
        process.stdout.write(`[${name}] ready at ${url}\n`);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
  });
}

await Promise.all(
  servers.map((s) =>
    startProcess(
      s.id,
      join(root, s.dir),
      ['src/main.ts'],
      {
        PORT: String(s.port),
        KEEL_JWKS_URL: `http://127.0.0.1:${GATEWAY_PORT}/.well-known/jwks.json`,
        KEEL_ISSUER: 'keel-gateway',
      },
      s.id === 'inventory' ? 'MCP at' : 'tool server at',
    ),
  ),
);

const config = join(dir, 'gateway.yaml');
writeFileSync(
  config,
  `# Written by scripts/demo.ts
auth:
  principals:
    - id: support-agent
      kind: service
      keySha256: ${sha256(AGENT_KEY)}
    - id: ide-alice
      keySha256: ${sha256(IDE_KEY)}
      tools: ['orders__get_order', 'kb__*']
servers:
${servers
  .map(
    (s) => `  - id: ${s.id}
    urls: [http://127.0.0.1:${s.port}${s.path}]`,
  )
  .join('\n')}
    tools:
      check_stock:
        idempotent: true
`,
);
await startProcess(
  'gateway',
  root,
  ['packages/gateway/src/cli.ts', '--config', config],
  { PORT: String(GATEWAY_PORT) },
  'listening on',
);

let nextId = 1;
async function call(key: string, label: string, method: string, params: unknown) {
  const body = JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params });
  const response = await fetch(gatewayUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${key}`,
    },
    body,
  });
  const reply = await readReply(response);
  const shown = JSON.stringify(reply.message.result ?? reply.message.error);
  console.log(
    `\n▸ ${label}\n  HTTP ${reply.status} ${shown.length > 400 ? `${shown.slice(0, 400)}…` : shown}`,
  );
  for (const n of reply.notifications)
    console.log(`  (notification) ${n.method} ${JSON.stringify(n.params)}`);
}

// End-user context travels in _meta from the service principal (DESIGN.md section 5).
const user = (extra: Record<string, unknown> = {}) => ({
  'dev.keel/user': 'user-42',
  'dev.keel/tenant': 'acme',
  'dev.keel/session': 'demo-session',
  ...extra,
});
const tool = (name: string, args: unknown, meta?: unknown) => ({
  name,
  arguments: args,
  ...(meta ? { _meta: meta } : {}),
});
const agent = (label: string, method: string, params: unknown) =>
  call(AGENT_KEY, `agent: ${label}`, method, params);

await agent('tools/list (every server, <server>__<tool> names)', 'tools/list', {});
await agent(
  'orders__get_order ord_1004',
  'tools/call',
  tool('orders__get_order', { orderId: 'ord_1004' }, user()),
);
await agent(
  'orders__get_order ord_9999 → declared error, told to the model',
  'tools/call',
  tool('orders__get_order', { orderId: 'ord_9999' }, user()),
);
await agent(
  'orders__list_customer_orders with a typo → INVALID_INPUT',
  'tools/call',
  tool('orders__list_customer_orders', { customerId: 'cus_001', limt: 2 }, user()),
);
await agent(
  'orders__refund_order (idempotency key r-1)',
  'tools/call',
  tool(
    'orders__refund_order',
    { orderId: 'ord_1003', reason: 'arrived damaged' },
    user({ 'dev.keel/idempotencyKey': 'r-1' }),
  ),
);
await agent(
  'orders__refund_order again with r-1 → the saved result, no second refund',
  'tools/call',
  tool(
    'orders__refund_order',
    { orderId: 'ord_1003', reason: 'arrived damaged' },
    user({ 'dev.keel/idempotencyKey': 'r-1' }),
  ),
);
await agent(
  'kb__reindex with progress relayed through the gateway',
  'tools/call',
  tool('kb__reindex', {}, user({ progressToken: 'demo' })),
);
await agent(
  'inventory__check_stock (tools mounted in an existing express app)',
  'tools/call',
  tool('inventory__check_stock', { sku: 'SKU-MUG' }, user()),
);
await call(IDE_KEY, 'IDE key: tools/list shows only what the key may call', 'tools/list', {});
await call(
  IDE_KEY,
  'IDE key: orders__refund_order is not among its tools',
  'tools/call',
  tool('orders__refund_order', { orderId: 'ord_1003', reason: 'x' }),
);
await call('wrong-key', 'an unknown key → 401', 'tools/list', {});

if (process.argv.includes('--exit') || process.env.CI) {
  stopAll();
} else {
  console.log(
    `\nThe gateway keeps running at ${gatewayUrl} (API key ${IDE_KEY}; metrics at /metrics); Ctrl-C stops everything.`,
  );
}
