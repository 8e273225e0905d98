/**
 * The demo: the whole stack as real processes. A chat client talks to the orchestrator; the
 * orchestrator routes each message, calls a scripted local model (no provider needed) and the
 * tools through the gateway; the gateway calls the example tool servers (orders, knowledge-base,
 * express-mount), which verify its signed call tokens against its JWKS.
 *
 * Part 1 is a conversation (lookup, a refund held for approval, a knowledge-base answer, usage
 * and traces). Part 2 talks to the gateway's MCP endpoint directly, once as the agent service
 * (passing end-user context) and once as an IDE API key limited to two tools.
 *
 *   make demo            (keeps running; Ctrl-C stops everything)
 *   make demo ARGS=--exit
 *
 * Ports: GATEWAY_PORT (7070), ORCHESTRATOR_PORT (7080), DEMO_MODEL_PORT (7190), ORDERS_PORT,
 * KB_PORT, INVENTORY_PORT (7101-7103).
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
const port = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const GATEWAY_PORT = port('GATEWAY_PORT', 7070);
const ORCHESTRATOR_PORT = port('ORCHESTRATOR_PORT', 7080);
const MODEL_PORT = port('DEMO_MODEL_PORT', 7190);
const gatewayUrl = `http://127.0.0.1:${GATEWAY_PORT}/mcp`;
const orchestratorUrl = `http://127.0.0.1:${ORCHESTRATOR_PORT}`;
const modelUrl = `http://127.0.0.1:${MODEL_PORT}`;
// Demo keys: the config holds only their sha256.
const AGENT_KEY = 'keel-demo-agent-key';
const IDE_KEY = 'keel-demo-ide-key';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const servers = [
  { id: 'orders', dir: 'examples/orders', port: port('ORDERS_PORT', 7101), path: '/mcp' },
  { id: 'kb', dir: 'examples/knowledge-base', port: port('KB_PORT', 7102), path: '/mcp' },
  {
    id: 'inventory',
    dir: 'examples/express-mount',
    port: port('INVENTORY_PORT', 7103),
    path: '/keel/mcp',
  },
];
const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'keel-demo-'));
const stopAll = () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  stopAll();
  process.exit(0);
});

/**
 * Start `args` under Node with tsx; resolve when a stdout line contains `ready`. Lines that
 * are pino JSON at warn level or above are shown (the orchestrator's development-mode notice).
 */
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
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += String(chunk);
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('{')) {
          try {
            const log = JSON.parse(line) as { level?: number; msg?: string };
            if ((log.level ?? 0) >= 40) process.stdout.write(`[${name}] (warn) ${log.msg}\n`);
          } catch {
            // not a log line
          }
        }
        if (!seen && line.includes(ready)) {
          seen = true;
          const url =
            /http:\/\/[^\s",]*\/mcp\b/.exec(line)?.[0] ?? /http:\/\/[^\s",]*/.exec(line)?.[0] ?? '';
          process.stdout.write(`[${name}] ready at ${url}\n`);
          resolve();
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
  });
}

async function startStack(): Promise<void> {
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

  await startProcess(
    'model',
    root,
    ['packages/orchestrator/src/testing/demo-model-main.ts'],
    { PORT: String(MODEL_PORT) },
    'demo model at',
  );
  // Both aliases point at the scripted model: `smart` over the Anthropic API, `fast` over the
  // OpenAI API. KEEL_DEMO_MODEL_API_KEY is unset, so no real key is ever sent to it.
  const models = join(dir, 'models.yaml');
  const entry = (provider: string, model: string, baseUrl: string, prices: string) => `
    - provider: ${provider}
      model: ${model}
      baseUrl: ${baseUrl}
      apiKeyEnv: KEEL_DEMO_MODEL_API_KEY
      prices: ${prices}
      contextWindow: 200000
      maxOutputTokens: 4096`;
  writeFileSync(
    models,
    `# Written by scripts/demo.ts: the scripted demo model at ${modelUrl}
models:
  smart:${entry('anthropic', 'demo-smart', modelUrl, '{ inputPerMTok: 3, outputPerMTok: 15 }')}
  fast:${entry('openai', 'demo-fast', `${modelUrl}/v1`, '{ inputPerMTok: 0.4, outputPerMTok: 1.6 }')}
`,
  );
  await startProcess(
    'orchestrator',
    root,
    [
      'packages/orchestrator/src/cli.ts',
      '--agents',
      join(root, 'examples/agents'),
      '--models',
      models,
    ],
    {
      PORT: String(ORCHESTRATOR_PORT),
      KEEL_AUTH: 'none',
      KEEL_GATEWAY_URL: gatewayUrl,
      KEEL_GATEWAY_API_KEY: AGENT_KEY,
    },
    'listening on',
  );
}

// ---- part 1: a chat client ----

const chatHeaders = {
  'content-type': 'application/json',
  'x-keel-user': 'user-42',
  'x-keel-tenant': 'acme',
};

async function api(method: string, path: string, body?: unknown): Promise<Response> {
  const response = await fetch(`${orchestratorUrl}${path}`, {
    method,
    headers: chatHeaders,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!response.ok) {
    throw new Error(`${method} ${path} → HTTP ${response.status} ${await response.text()}`);
  }
  return response;
}

const clip = (value: unknown, max = 240) => {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
};

interface TurnResult {
  readonly text: string;
  readonly tools: string[];
  readonly approvals: Array<{ toolCallId: string; toolName: string }>;
}

/** Read a UI message stream, printing it as it arrives. Throws on an `error` chunk. */
async function readTurn(response: Response): Promise<TurnResult> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const result: TurnResult = { text: '', tools: [], approvals: [] };
  let text = '';
  let inText = false;
  let finished = false;
  let buffered = '';
  const endText = () => {
    if (inText) process.stdout.write('\n');
    inText = false;
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    const events = buffered.split('\n\n');
    buffered = events.pop() ?? '';
    for (const event of events) {
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data === '' || data === '[DONE]') continue;
      const chunk = JSON.parse(data) as Record<string, unknown> & { type: string };
      switch (chunk.type) {
        case 'text-delta':
          if (!inText) process.stdout.write('  assistant: ');
          inText = true;
          process.stdout.write(String(chunk.delta));
          text += String(chunk.delta);
          break;
        case 'text-end':
          endText();
          break;
        case 'tool-input-available':
          endText();
          result.tools.push(String(chunk.toolName));
          console.log(`  → tool ${String(chunk.toolName)} ${clip(chunk.input)}`);
          break;
        case 'tool-output-available':
          console.log(`  ← output ${clip(chunk.output)}`);
          break;
        case 'tool-output-error':
          console.log(`  ✗ error ${clip(chunk.errorText)}`);
          break;
        case 'data-keel-approval': {
          endText();
          const data = chunk.data as { toolCallId: string; toolName: string; input: unknown };
          result.approvals.push({ toolCallId: data.toolCallId, toolName: data.toolName });
          console.log(`  ⏸ approval needed: ${data.toolName} ${clip(data.input)}`);
          break;
        }
        case 'data-keel-limit':
          endText();
          console.log(`  ⛔ limit ${clip(chunk.data)}`);
          break;
        case 'error':
          endText();
          throw new Error(`the turn failed: ${String(chunk.errorText)}`);
        case 'finish': {
          endText();
          finished = true;
          const meta = (chunk.messageMetadata ?? {}) as {
            model?: string;
            usage?: { inputTokens: number; outputTokens: number };
            costUsd?: number;
            traceId?: string;
          };
          console.log(
            `  [finish] model ${meta.model ?? '-'}, tokens ${meta.usage?.inputTokens ?? 0} in / ${meta.usage?.outputTokens ?? 0} out, cost $${(meta.costUsd ?? 0).toFixed(6)}, trace ${meta.traceId ?? '-'}`,
          );
          break;
        }
        default:
          break;
      }
    }
  }
  endText();
  if (!finished) throw new Error('the stream ended without a finish chunk');
  return { ...result, text };
}

let messageCount = 0;
async function say(sessionId: string, text: string): Promise<TurnResult> {
  console.log(`\n  user: ${text}`);
  const response = await api('POST', `/v1/sessions/${sessionId}/messages`, {
    id: `demo-msg-${++messageCount}`,
    role: 'user',
    parts: [{ type: 'text', text }],
  });
  return readTurn(response);
}

function expectTurn(turn: TurnResult, tool: string, what: string): void {
  if (!turn.tools.includes(tool)) throw new Error(`${what}: expected a ${tool} call`);
  if (turn.approvals.length === 0 && turn.text.trim() === '') throw new Error(`${what}: no answer`);
}

async function conversation(): Promise<void> {
  console.log(
    '\n═══ Part 1: a conversation — chat client → orchestrator → model + gateway → tool servers ═══',
  );
  const created = (await (
    await api('POST', '/v1/sessions', {
      agent: 'support',
      input: { COMPANY_NAME: 'Acme Outfitters', CUSTOMER_NAME: 'Ada' },
    })
  ).json()) as { id: string; agent: string };
  console.log(
    `\n▸ POST /v1/sessions (user-42 @ acme, dev auth) → session ${created.id}, agent ${created.agent}`,
  );

  expectTurn(await say(created.id, 'Where is my order ord_1004?'), 'orders__get_order', 'lookup');

  const refund = await say(created.id, 'Please refund ord_1003, it arrived damaged.');
  const pending = refund.approvals[0];
  if (pending === undefined) throw new Error('the refund was not held for approval');
  console.log(
    `\n▸ POST /v1/sessions/${created.id}/approvals/${pending.toolCallId} {approved:true}`,
  );
  const approved = await readTurn(
    await api('POST', `/v1/sessions/${created.id}/approvals/${pending.toolCallId}`, {
      approved: true,
    }),
  );
  if (!/refund .* is issued/.test(approved.text))
    throw new Error('the approved refund was not reported');

  expectTurn(await say(created.id, 'What is your return policy?'), 'kb__search_articles', 'faq');

  interface Totals {
    calls: number;
    inputTokens: number;
    outputTokens: number;
    costUsd: number;
  }
  const usage = (await (await api('GET', '/v1/usage')).json()) as {
    total: Totals;
    bySession: Record<string, Totals>;
    byModel: Record<string, Totals>;
  };
  const line = (t: Totals | undefined) =>
    t === undefined
      ? '-'
      : `${t.calls} model calls, ${t.inputTokens} in / ${t.outputTokens} out tokens, $${t.costUsd.toFixed(6)}`;
  console.log(`\n▸ GET /v1/usage (user-42 @ acme)`);
  console.log(`  this session: ${line(usage.bySession[created.id])}`);
  console.log(`  all sessions: ${line(usage.total)}`);
  for (const [model, t] of Object.entries(usage.byModel)) console.log(`  ${model}: ${line(t)}`);

  const { traces } = (await (await api('GET', `/v1/sessions/${created.id}/traces`)).json()) as {
    traces: Array<{ traceId: string; status: string; startMs: number; endMs?: number }>;
  };
  console.log(`\n▸ GET /v1/sessions/${created.id}/traces (newest first)`);
  for (const t of traces) {
    const full = (await (await api('GET', `/v1/traces/${t.traceId}`)).json()) as {
      spans: Array<{ name: string; status: string }>;
    };
    const ms = t.endMs === undefined ? '…' : `${t.endMs - t.startMs}ms`;
    const spans = full.spans.map((s) => (s.status === 'error' ? `${s.name} ✗` : s.name));
    console.log(`  ${t.traceId} ${t.status} ${ms}: ${spans.join(' · ')}`);
  }
}

// ---- part 2: straight to the gateway ----

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

async function gatewayCalls(): Promise<void> {
  console.log('\n═══ Part 2: the gateway MCP endpoint directly ═══');
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
    'orders__refund_order ord_1008 (idempotency key r-1)',
    'tools/call',
    tool(
      'orders__refund_order',
      { orderId: 'ord_1008', reason: 'arrived damaged' },
      user({ 'dev.keel/idempotencyKey': 'r-1' }),
    ),
  );
  await agent(
    'orders__refund_order again with r-1 → the saved result, no second refund',
    'tools/call',
    tool(
      'orders__refund_order',
      { orderId: 'ord_1008', reason: 'arrived damaged' },
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
    tool('orders__refund_order', { orderId: 'ord_1008', reason: 'x' }),
  );
  await call('wrong-key', 'an unknown key → 401', 'tools/list', {});
}

try {
  await startStack();
  await conversation();
  await gatewayCalls();
} catch (error) {
  console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
  stopAll();
  process.exit(1);
}

if (process.argv.includes('--exit') || process.env.CI) {
  stopAll();
} else {
  console.log(
    `\nEverything keeps running: the orchestrator at ${orchestratorUrl} (KEEL_AUTH=none; send X-Keel-User), the gateway at ${gatewayUrl} (API key ${IDE_KEY}; metrics at /metrics); Ctrl-C stops everything.`,
  );
}
