// Runs the official MCP conformance suite (needs Node 22, fetched as the npm package node@22)
// with the committed baselines against:
//   1. a tool server serving the SDK's conformance fixtures (auth off: the suite sends no auth);
//   2. the gateway (development auth, namespacing `auto`) fronting a fixture server that
//      verifies the gateway's signed call tokens against its JWKS.
// `node scripts/conformance.mjs [tool-sdk|gateway]` runs one of them.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsx = join(root, 'node_modules/.bin/tsx');
const wanted = process.argv[2];
const children = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

function start(args, env, pattern, name) {
  const child = spawn(tsx, args, {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = pattern.exec(out);
      if (match) {
        child.stdout.resume();
        resolve({ child, url: match[1] });
      }
    });
    child.on('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
    setTimeout(() => reject(new Error(`${name} did not start`)), 60_000).unref();
  });
}

/** SIGTERM and wait: tsx relays it to the Node it runs; a SIGKILL at exit would orphan that. */
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

/**
 * Run the suite. Async on purpose: the servers' stdout pipes are drained by this process, and a
 * blocked event loop (spawnSync) would let a chatty server fill its pipe and stall.
 */
async function suite(url, baseline, label) {
  console.log(`conformance: ${label} at ${url}`);
  const child = spawn(
    'npx',
    [
      '-y',
      '-p',
      'node@22',
      '-p',
      '@modelcontextprotocol/conformance@0.1.16',
      'conformance',
      'server',
      '--url',
      url,
      '--expected-failures',
      join(root, baseline),
    ],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
      // The suite needs Node 22; the repo's engine-strict is for our own packages only.
      env: { ...process.env, npm_config_engine_strict: 'false' },
    },
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  // Kill the whole group (npx and the Node 22 it starts) if the suite outlives 10 minutes.
  const timer = setTimeout(() => process.kill(-child.pid, 'SIGKILL'), 600_000);
  const status = await new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  clearTimeout(timer);
  // Baseline scenarios count as failed in the suite's own total; say what they are instead, so a
  // log reader (or CI) does not take expected, documented gaps for failures.
  process.stdout.write(
    output.replace(
      /^Total: (\d+) passed, (\d+) failed$/m,
      `Total: $1 scenarios passed; $2 not covered by design (listed with reasons in ${baseline})`,
    ),
  );
  return status;
}

async function toolSdk() {
  const fixtures = await start(
    ['packages/tool-sdk/src/conformance/serve-fixtures.ts', '0'],
    {},
    /^(http\S+)$/m,
    'fixture server',
  );
  const status = await suite(
    fixtures.url,
    'packages/tool-sdk/conformance-baseline.yml',
    'tool-sdk',
  );
  await stop(fixtures.child);
  return status;
}

async function gateway() {
  const gatewayPort = await freePort();
  const fixtures = await start(
    ['packages/tool-sdk/src/conformance/serve-fixtures.ts', '0'],
    {
      KEEL_JWKS_URL: `http://127.0.0.1:${gatewayPort}/.well-known/jwks.json`,
      KEEL_ISSUER: 'keel-gateway',
    },
    /^(http\S+)$/m,
    'fixture server',
  );
  const dir = mkdtempSync(join(tmpdir(), 'keel-conformance-'));
  const config = join(dir, 'gateway.yaml');
  writeFileSync(
    config,
    [
      'gateway:',
      '  namespacing: auto',
      'auth:',
      '  development: true',
      'servers:',
      '  - id: conformance',
      `    urls: [${fixtures.url}]`,
      '',
    ].join('\n'),
  );
  const gw = await start(
    ['packages/gateway/src/cli.ts', '--config', config],
    { PORT: String(gatewayPort) },
    /listening on (http\S+)"/,
    'gateway',
  );
  const status = await suite(gw.url, 'packages/gateway/conformance-baseline.yml', 'gateway');
  await Promise.all([stop(gw.child), stop(fixtures.child)]);
  rmSync(dir, { recursive: true, force: true });
  return status;
}

let failed = false;
if (!wanted || wanted === 'tool-sdk') failed = (await toolSdk()) !== 0 || failed;
if (!wanted || wanted === 'gateway') failed = (await gateway()) !== 0 || failed;
process.exit(failed ? 1 : 0);
