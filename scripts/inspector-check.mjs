// Checks that the MCP Inspector CLI (`@modelcontextprotocol/inspector --cli`, needs Node 22,
// fetched as the npm package node@22) lists and calls the example tools over Streamable HTTP.
// Starts each example server (orders, knowledge-base, express-mount) in development auth mode
// (KEEL_AUTH=none: the Inspector sends no call token), runs `--method tools/list` and
// `--method tools/call` against it, and checks the JSON the Inspector prints.
// The same checks run through the gateway in front of orders and knowledge-base.
// `node scripts/inspector-check.mjs [orders|knowledge-base|express-mount|gateway]` checks one.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';

const INSPECTOR = '@modelcontextprotocol/inspector@0.22.0';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsx = join(root, 'node_modules/.bin/tsx');
const wanted = process.argv[2];
const children = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

/** Each example: how it starts, the tools it must list, and calls with checks of the result. */
const EXAMPLES = [
  {
    name: 'orders',
    main: 'examples/orders/src/main.ts',
    // Prints the URL it bound, so port 0 works.
    port: 0,
    ready: /tool server at (http\S+)/,
    tools: ['get_order', 'list_customer_orders', 'refund_order'],
    calls: [
      {
        tool: 'get_order',
        args: { orderId: 'ord_1001' },
        check: (s) =>
          s.id === 'ord_1001' &&
          s.customerId === 'cus_001' &&
          s.status === 'pending' &&
          s.items.length > 0,
        show: (s) => `${s.id} ${s.status}, ${s.items.length} item(s)`,
      },
      {
        // Numbers given as --tool-arg must reach the tool as numbers, or the schema refuses them.
        tool: 'list_customer_orders',
        args: { customerId: 'cus_001', limit: 2 },
        check: (s) => s.orders.length === 2 && s.orders.every((o) => o.customerId === 'cus_001'),
        show: (s) => s.orders.map((o) => o.id).join(', '),
      },
      {
        tool: 'get_order',
        args: { orderId: 'ord_9999' },
        error: 'ORDER_NOT_FOUND',
      },
    ],
  },
  {
    name: 'knowledge-base',
    main: 'examples/knowledge-base/src/main.ts',
    port: 0,
    ready: /tool server at (http\S+)/,
    tools: ['search_articles', 'get_article', 'reindex'],
    calls: [
      {
        tool: 'search_articles',
        args: { query: 'partial refund to the original payment method' },
        check: (s) => s.hits[0]?.id === 'refund-policy',
        show: (s) => s.hits.map((h) => h.id).join(', '),
      },
    ],
  },
  {
    name: 'express-mount',
    main: 'examples/express-mount/src/main.ts',
    // Prints the port it was given, not the one it bound: give it a free one.
    port: undefined,
    ready: /MCP at (http\S+)/,
    tools: ['check_stock'],
    calls: [
      {
        tool: 'check_stock',
        args: { sku: 'SKU-MUG' },
        check: (s) => s.sku === 'SKU-MUG' && s.inStock === 12,
        show: (s) => `${s.sku}: ${s.inStock} in stock`,
      },
    ],
  },
  {
    // The same Inspector, through the gateway: two example servers verify the gateway's signed
    // call tokens against its JWKS; the gateway runs in development auth (the Inspector sends
    // no API key) with the default `<serverId>__<tool>` names.
    name: 'gateway',
    start: startGateway,
    tools: [
      'orders__get_order',
      'orders__list_customer_orders',
      'orders__refund_order',
      'kb__search_articles',
      'kb__get_article',
      'kb__reindex',
    ],
    calls: [
      {
        tool: 'orders__get_order',
        args: { orderId: 'ord_1001' },
        check: (s) => s.id === 'ord_1001' && s.customerId === 'cus_001',
        show: (s) => `${s.id} ${s.status}, ${s.items.length} item(s)`,
      },
      {
        tool: 'kb__search_articles',
        args: { query: 'partial refund to the original payment method' },
        check: (s) => s.hits[0]?.id === 'refund-policy',
        show: (s) => s.hits.map((h) => h.id).join(', '),
      },
      {
        tool: 'orders__get_order',
        args: { orderId: 'ord_9999' },
        error: 'ORDER_NOT_FOUND',
      },
    ],
  },
];

/** Two example servers that trust the gateway's JWKS, and the gateway in front of them. */
async function startGateway() {
  const gatewayPort = await freePort();
  const trust = {
    KEEL_AUTH: '',
    KEEL_JWKS_URL: `http://127.0.0.1:${gatewayPort}/.well-known/jwks.json`,
    KEEL_ISSUER: 'keel-gateway',
  };
  const orders = await start(EXAMPLES[0], 0, trust);
  const kb = await start(EXAMPLES[1], 0, trust);
  const dir = mkdtempSync(join(tmpdir(), 'keel-inspector-'));
  const config = join(dir, 'gateway.yaml');
  writeFileSync(
    config,
    [
      'auth:',
      '  development: true',
      'servers:',
      '  - id: orders',
      `    urls: [${orders.url}]`,
      '  - id: kb',
      `    urls: [${kb.url}]`,
      '',
    ].join('\n'),
  );
  const gateway = await start(
    {
      name: 'gateway',
      main: 'packages/gateway/src/cli.ts',
      args: ['--config', config],
      ready: /listening on (http\S+)"/,
    },
    gatewayPort,
  );
  return {
    ...gateway,
    stop: async () => {
      await Promise.all([stop(gateway.child), stop(orders.child), stop(kb.child)]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function start(example, port, env = { KEEL_AUTH: 'none' }) {
  const child = spawn(tsx, [example.main, ...(example.args ?? [])], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
  });
  children.push(child);
  let out = '';
  child.stdout.on('data', (chunk) => {
    // Keep the tail of the server's log for a failure report; the rest is not needed.
    out = (out + chunk).slice(-20_000);
  });
  const log = () => out;
  return new Promise((resolve, reject) => {
    const onData = () => {
      const match = example.ready.exec(out);
      if (match) {
        child.stdout.off('data', onData);
        resolve({ child, url: match[1], log });
      }
    };
    child.stdout.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${example.name} exited with ${code}:\n${out}`)));
    setTimeout(() => reject(new Error(`${example.name} did not start:\n${out}`)), 60_000).unref();
  });
}

function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Run the Inspector CLI once; resolves with its exit status and output (never rejects). */
function inspector(url, args) {
  return new Promise((resolve) => {
    const child = spawn(
      'npx',
      [
        '-y',
        '-p',
        'node@22',
        '-p',
        INSPECTOR,
        'mcp-inspector',
        '--cli',
        url,
        '--transport',
        'http',
        ...args,
      ],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
        // The Inspector needs Node 22; the repo's engine-strict is for our own packages only.
        env: { ...process.env, npm_config_engine_strict: 'false' },
      },
    );
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ status: 1, stdout, stderr: `${stderr}${error.message}` });
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status: status ?? 1, signal, stdout, stderr });
    });
  });
}

/** Parse the Inspector's JSON output, or throw with what it printed. */
function parseOutput(run) {
  const detail = () =>
    `exit ${run.status}${run.signal ? ` (${run.signal})` : ''}\n--- stdout\n${run.stdout.slice(-4000)}\n--- stderr\n${run.stderr
      .replace(/^npm warn EBADENGINE.*\n/gm, '')
      .slice(-4000)}`;
  if (run.status !== 0) throw new Error(`the Inspector failed: ${detail()}`);
  try {
    return JSON.parse(run.stdout);
  } catch {
    throw new Error(`the Inspector printed no JSON: ${detail()}`);
  }
}

const toolArgs = (args) =>
  Object.entries(args).flatMap(([key, value]) => [
    '--tool-arg',
    `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`,
  ]);

async function check(example) {
  const results = [];
  const record = async (label, fn) => {
    const started = Date.now();
    try {
      const detail = await fn();
      results.push({ ok: true, label, detail, ms: Date.now() - started });
    } catch (error) {
      results.push({ ok: false, label, detail: error.message, ms: Date.now() - started });
    }
  };

  let server;
  try {
    server = example.start
      ? await example.start()
      : await start(example, example.port ?? (await freePort()));
  } catch (error) {
    return [{ ok: false, label: `${example.name}: start`, detail: error.message, ms: 0 }];
  }
  console.log(`inspector: ${example.name} at ${server.url}`);

  await record(`${example.name} tools/list`, async () => {
    const listed = parseOutput(await inspector(server.url, ['--method', 'tools/list']));
    const names = (listed.tools ?? []).map((t) => t.name);
    if (!isDeepStrictEqual([...names].sort(), [...example.tools].sort())) {
      throw new Error(`listed [${names.join(', ')}], expected [${example.tools.join(', ')}]`);
    }
    return names.join(', ');
  });

  for (const call of example.calls) {
    const shown = Object.entries(call.args)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(' ');
    await record(`${example.name} tools/call ${call.tool} ${shown}`, async () => {
      const result = parseOutput(
        await inspector(server.url, [
          '--method',
          'tools/call',
          '--tool-name',
          call.tool,
          ...toolArgs(call.args),
        ]),
      );
      const error = result._meta?.['dev.keel/error'];
      if (call.error) {
        if (result.isError !== true || error?.code !== call.error) {
          throw new Error(`expected error ${call.error}, got ${JSON.stringify(result)}`);
        }
        return `isError ${error.code}: ${error.message}`;
      }
      if (result.isError) {
        throw new Error(`the tool failed: ${JSON.stringify(error ?? result.content)}`);
      }
      const structured = result.structuredContent;
      const text = result.content?.find((c) => c.type === 'text')?.text;
      if (structured === undefined || !passes(call, structured)) {
        throw new Error(`unexpected result: ${JSON.stringify(result).slice(0, 2000)}`);
      }
      // Clients without structured output read the same JSON as text.
      if (text === undefined || !isDeepStrictEqual(JSON.parse(text), structured)) {
        throw new Error(`text content differs from structuredContent: ${text}`);
      }
      return call.show(structured);
    });
  }

  await (server.stop ? server.stop() : stop(server.child));
  if (results.some((r) => !r.ok)) {
    console.log(`--- ${example.name} server log (tail)\n${server.log().slice(-4000)}`);
  }
  return results;
}

function passes(call, structured) {
  try {
    return call.check(structured) === true;
  } catch {
    return false;
  }
}

const started = Date.now();
const selected = EXAMPLES.filter((e) => !wanted || e.name === wanted);
if (selected.length === 0) {
  console.error(`unknown example ${wanted}; one of ${EXAMPLES.map((e) => e.name).join(', ')}`);
  process.exit(2);
}
const results = [];
for (const example of selected) results.push(...(await check(example)));

console.log(`\ninspector check (${INSPECTOR}, Node 22 via npx):`);
for (const r of results) {
  console.log(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.label} (${(r.ms / 1000).toFixed(1)} s)`);
  console.log(`       ${r.detail.split('\n').join('\n       ')}`);
}
const failed = results.filter((r) => !r.ok).length;
console.log(
  `${results.length - failed} passed, ${failed} failed in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
process.exit(failed > 0 ? 1 : 0);
