// Fault tests of a real gateway process (S16-S21): tool servers on loopback (in this process, or
// real child processes for kill -9), fault proxies between the gateway and them.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { pino } from 'pino';
import { createToolServer, defineTool } from '@keel/tool-sdk';
import type { ToolServer } from '@keel/tool-sdk';
import { startFaultProxy } from './support/fault-proxy.js';
import type { FaultProxy } from './support/fault-proxy.js';
import { freePort, startExampleToolServer, startProcess } from './support/processes.js';
import type { ExampleToolServer, RunningProcess } from './support/processes.js';

const silent = pino({ level: 'silent' });
const ERROR_KEY = 'dev.keel/error';

interface ToolResult {
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  _meta?: Record<string, { code: string; details?: { attempts?: unknown[] } } | undefined>;
}

const errorCode = (result: ToolResult): string | undefined => result._meta?.[ERROR_KEY]?.code;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('gateway faults (real gateway process)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-gw-faults-'));
  const toolServers: ToolServer[] = [];
  const proxies: FaultProxy[] = [];
  let flaky: Server | undefined;
  let gateway: RunningProcess | undefined;
  let gatewayUrl = '';
  let orderReplicas: ExampleToolServer[] = [];
  let frozenReplicas: ExampleToolServer[] = [];

  // S16
  let primaryProxy: FaultProxy;
  // S17
  const hang = { started: 0, aborted: 0 };
  // S18
  const flakyState = { mode: 'ok' as 'ok' | '503', calls: 0 };
  // S19, S20
  let counterProxy: FaultProxy;
  const runs = new Map<string, number>();

  async function toolServer(
    id: string,
    gatewayPort: number,
    tools: Parameters<typeof createToolServer>[0]['tools'],
  ): Promise<string> {
    const server = createToolServer({
      id,
      logger: silent,
      auth: {
        jwksUrl: `http://127.0.0.1:${gatewayPort}/.well-known/jwks.json`,
        issuer: 'keel-gateway',
      },
      tools,
    });
    toolServers.push(server);
    const { port } = await server.listen(0, '127.0.0.1');
    return `http://127.0.0.1:${port}/mcp`;
  }

  async function proxyTo(url: string): Promise<FaultProxy> {
    const proxy = await startFaultProxy({
      target: { host: '127.0.0.1', port: Number(new URL(url).port) },
      dropDrainMs: 5_000,
    });
    proxies.push(proxy);
    return proxy;
  }

  beforeAll(async () => {
    const gatewayPort = await freePort();

    const lookup = (servedBy: string) =>
      defineTool({
        name: 'lookup',
        description: 'Read something',
        input: z.object({ key: z.string() }),
        output: z.object({ key: z.string(), servedBy: z.string() }),
        annotations: { readOnly: true },
        handler: ({ key }) => ({ key, servedBy }),
      });
    primaryProxy = await proxyTo(await toolServer('primary', gatewayPort, [lookup('primary')]));
    const roUrl = await toolServer('ro', gatewayPort, [lookup('ro')]);

    const slowUrl = await toolServer('slow', gatewayPort, [
      defineTool({
        name: 'hang',
        description: 'Never answers; notes when its call is aborted',
        input: z.object({}),
        output: z.object({ ok: z.boolean() }),
        handler: (_input, ctx) => {
          hang.started++;
          return new Promise<{ ok: boolean }>((_resolve, reject) => {
            ctx.signal.addEventListener(
              'abort',
              () => {
                hang.aborted++;
                reject(new Error('aborted'));
              },
              { once: true },
            );
          });
        },
      }),
    ]);

    // A third-party style server (no auth) answering 503 to tools/call on demand; ping stays up.
    flaky = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const msg = JSON.parse(body) as { id?: number; method: string };
        if (msg.id === undefined) {
          res.statusCode = 202;
          res.end();
          return;
        }
        if (msg.method === 'tools/call') {
          flakyState.calls++;
          if (flakyState.mode === '503') {
            res.statusCode = 503;
            res.setHeader('content-type', 'text/plain');
            res.end('overloaded');
            return;
          }
        }
        const result =
          msg.method === 'initialize'
            ? {
                protocolVersion: '2025-11-25',
                capabilities: { tools: {} },
                serverInfo: { name: 'flaky', version: '1' },
              }
            : msg.method === 'tools/list'
              ? { tools: [{ name: 'work', inputSchema: { type: 'object' } }] }
              : msg.method === 'tools/call'
                ? { content: [{ type: 'text', text: 'worked' }] }
                : {};
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
      });
    });
    await new Promise<void>((resolve) => flaky!.listen(0, '127.0.0.1', resolve));
    const flakyUrl = `http://127.0.0.1:${(flaky.address() as { port: number }).port}/mcp`;

    counterProxy = await proxyTo(
      await toolServer('counter', gatewayPort, [
        defineTool({
          name: 'add',
          description: 'Counts its runs per idempotency key (a side effect)',
          input: z.object({ n: z.string() }),
          output: z.object({ n: z.string(), key: z.string() }),
          handler: ({ n }, ctx) => {
            const key = ctx.idempotencyKey ?? `no-key:${n}`;
            runs.set(key, (runs.get(key) ?? 0) + 1);
            return { n, key };
          },
        }),
      ]),
    );

    const replicas = await Promise.all(
      Array.from({ length: 4 }, () => startExampleToolServer('orders', { KEEL_AUTH: 'none' })),
    );
    orderReplicas = replicas.slice(0, 2);
    frozenReplicas = replicas.slice(2);

    const retryFast = { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 };
    const config = {
      auth: { development: true },
      // Tolerant of a loaded CI box (a healthy replica answering slowly must not be marked down).
      health: { intervalMs: 200, timeoutMs: 1_500, unhealthyAfter: 3 },
      servers: [
        {
          id: 'primary',
          urls: [primaryProxy.url('/mcp')],
          policies: { deadlineMs: 5_000, attemptTimeoutMs: 1_000, retry: retryFast },
          tools: { lookup: { idempotent: true, fallbacks: ['ro'] } },
        },
        { id: 'ro', urls: [roUrl] },
        {
          id: 'slow',
          urls: [slowUrl],
          policies: {
            deadlineMs: 1_000,
            attemptTimeoutMs: 400,
            retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20 },
          },
          tools: { hang: { idempotent: true } },
        },
        {
          id: 'flaky',
          urls: [flakyUrl],
          auth: { mode: 'none' },
          policies: {
            retry: { maxAttempts: 1 },
            breaker: { consecutiveFailures: 3, halfOpenAfterMs: 1_000, probeTimeoutMs: 1_000 },
          },
        },
        {
          id: 'counter',
          urls: [counterProxy.url('/mcp')],
          policies: {
            deadlineMs: 20_000,
            attemptTimeoutMs: 3_000,
            retry: { maxAttempts: 6, baseDelayMs: 20, maxDelayMs: 200 },
          },
        },
        {
          id: 'orders',
          urls: orderReplicas.map((replica) => replica.url),
          auth: { mode: 'none' },
          policies: { deadlineMs: 5_000, attemptTimeoutMs: 1_000, retry: retryFast },
          tools: { get_order: { idempotent: true } },
        },
        {
          id: 'frozen',
          urls: frozenReplicas.map((replica) => replica.url),
          auth: { mode: 'none' },
          policies: {
            deadlineMs: 5_000,
            attemptTimeoutMs: 1_000,
            retry: retryFast,
            breaker: { consecutiveFailures: 2, halfOpenAfterMs: 30_000 },
          },
          tools: { get_order: { idempotent: true } },
        },
      ],
    };
    const configPath = join(dir, 'gateway.yaml');
    // JSON is YAML.
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    gateway = await startProcess({
      command: process.execPath,
      args: ['--import', 'tsx', 'packages/gateway/src/cli.ts', '--config', configPath],
      env: { PORT: String(gatewayPort), REDIS_URL: undefined, LOG_LEVEL: 'info' },
      readyPattern: /keel gateway listening on (http:\/\/[^\s"]+)/,
      timeoutMs: 30_000,
    });
    gatewayUrl = gateway.ready![1]!;
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop({ graceMs: 1_000 });
    // stop() also sends SIGCONT, so a frozen replica ends too.
    await Promise.all([...orderReplicas, ...frozenReplicas].map((replica) => replica.stop()));
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await Promise.all(toolServers.map((server) => server.close({ graceMs: 100 })));
    if (flaky) {
      flaky.closeAllConnections();
      await new Promise<void>((resolve) => flaky!.close(() => resolve()));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(
    name: string,
    args: Record<string, unknown> = {},
    meta?: Record<string, unknown>,
  ): Promise<ToolResult> {
    const response = await fetch(gatewayUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
      }),
    });
    const text = await response.text();
    expect(response.status, text).toBe(200);
    const messages = text.startsWith('{')
      ? [JSON.parse(text)]
      : text
          .split('\n')
          .filter((line) => line.startsWith('data: '))
          .map((line) => JSON.parse(line.slice(6)));
    const last = messages.at(-1) as { result?: ToolResult; error?: unknown };
    expect(last.result, text).toBeDefined();
    return last.result!;
  }

  it('S16: primary down → the read-only fallback answers and says who served', async () => {
    const before = await call('primary__lookup', { key: 'a' });
    expect(before.structuredContent).toEqual({ key: 'a', servedBy: 'primary' });

    // Down as a dead host: new connections refused, and the open keep-alive ones gone too.
    await primaryProxy.setFault('down');
    primaryProxy.destroyConnections();
    await sleep(100);
    const started = performance.now();
    const during = await call('primary__lookup', { key: 'b' });
    expect(during.isError, JSON.stringify(during)).not.toBe(true);
    expect(during.structuredContent).toEqual({ key: 'b', servedBy: 'ro' });
    expect(performance.now() - started).toBeLessThan(4_000);

    // Once the health checks mark the primary unhealthy, the fallback still answers.
    await sleep(800);
    const unhealthy = await call('primary__lookup', { key: 'c' });
    expect(unhealthy.structuredContent).toEqual({ key: 'c', servedBy: 'ro' });

    const metrics = await (await fetch(gatewayUrl.replace(/\/mcp$/, '/metrics'))).text();
    expect(metrics).toMatch(
      /keel_gateway_fallbacks_total\{[^}]*from="primary"[^}]*to="ro"[^}]*\} [1-9]/,
    );

    await primaryProxy.setFault('none');
    await vi.waitFor(
      async () =>
        expect((await call('primary__lookup', { key: 'd' })).structuredContent).toEqual({
          key: 'd',
          servedBy: 'primary',
        }),
      { timeout: 10_000, interval: 200 },
    );
  });

  it('S17: a hanging upstream → TIMEOUT within the deadline, and the upstream call is aborted', async () => {
    const started = performance.now();
    const result = await call('slow__hang');
    const elapsed = performance.now() - started;
    expect(result.isError).toBe(true);
    expect(errorCode(result)).toBe('TIMEOUT');
    // deadlineMs 1000: not before one attempt timeout, and not long after the deadline.
    expect(elapsed).toBeGreaterThanOrEqual(350);
    expect(elapsed).toBeLessThan(3_000);
    expect(hang.started).toBeGreaterThanOrEqual(2);
    // Every attempt's upstream request was aborted: the handler saw ctx.signal abort.
    await vi.waitFor(() => expect(hang.aborted).toBe(hang.started), { timeout: 5_000 });
  });

  it('S18: a 503 storm opens the breaker → CIRCUIT_OPEN fast, then half-open recovery', async () => {
    expect(errorCode(await call('flaky__work'))).toBeUndefined();
    flakyState.mode = '503';
    for (let i = 0; i < 3; i++) {
      const result = await call('flaky__work');
      expect(errorCode(result)).toBe('UNAVAILABLE');
    }
    const hitsWhenOpened = flakyState.calls;

    const started = performance.now();
    for (let i = 0; i < 5; i++) {
      const result = await call('flaky__work');
      expect(errorCode(result)).toBe('CIRCUIT_OPEN');
    }
    // Refused at the gateway: fast, and nothing reached the upstream.
    expect((performance.now() - started) / 5).toBeLessThan(300);
    expect(flakyState.calls).toBe(hitsWhenOpened);

    flakyState.mode = 'ok';
    await sleep(1_200);
    // The half-open probe goes through, succeeds, and closes the breaker.
    const probe = await call('flaky__work');
    expect(probe.isError, JSON.stringify(probe)).not.toBe(true);
    expect(flakyState.calls).toBe(hitsWhenOpened + 1);
    for (let i = 0; i < 3; i++) expect((await call('flaky__work')).isError).not.toBe(true);
    expect(flakyState.calls).toBe(hitsWhenOpened + 4);
  });

  it('S19: 5% lost replies with an idempotency key → every call succeeds, each ran once', async () => {
    await counterProxy.setFault({ kind: 'drop-reply-rate', rate: 0.05 });
    const droppedBefore = counterProxy.stats.droppedReplies;
    const total = 1_000;
    const concurrency = 20;
    const prefix = `s19-${Date.now()}`;
    const failures: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) {
          const i = next++;
          const key = `${prefix}-${i}`;
          const result = await call(
            'counter__add',
            { n: String(i) },
            { 'dev.keel/idempotencyKey': key },
          );
          if (result.isError || result.structuredContent?.key !== key) {
            failures.push(JSON.stringify(result));
          }
        }
      }),
    );
    await counterProxy.setFault('none');
    expect(failures).toEqual([]);
    expect(counterProxy.stats.droppedReplies - droppedBefore).toBeGreaterThan(10);
    for (let i = 0; i < total; i++) {
      expect(runs.get(`${prefix}-${i}`), `runs of key ${i}`).toBe(1);
    }
  }, 120_000);

  it('S20: a lost reply without an idempotency key → INDETERMINATE, no retry, ran once', async () => {
    // No stale keep-alive socket from earlier resets: the next request opens a fresh connection.
    counterProxy.destroyConnections();
    await sleep(100);
    await counterProxy.setFault('drop-reply');
    const droppedBefore = counterProxy.stats.droppedReplies;
    const n = `s20-${Date.now()}`;
    const result = await call('counter__add', { n });
    await counterProxy.setFault('none');
    expect(result.isError).toBe(true);
    expect(errorCode(result)).toBe('INDETERMINATE');
    expect(result._meta?.[ERROR_KEY]?.details?.attempts).toHaveLength(1);
    expect(counterProxy.stats.droppedReplies - droppedBefore).toBeGreaterThanOrEqual(1);
    await vi.waitFor(() => expect(runs.get(`no-key:${n}`)).toBe(1), { timeout: 3_000 });
    await sleep(300);
    expect(runs.get(`no-key:${n}`)).toBe(1);
  });

  it('S21: kill -9 of one of two replicas mid-load → calls keep succeeding on the other', async () => {
    const [victim, survivor] = orderReplicas;
    expect((await fetch(survivor!.healthUrl)).status).toBe(200);
    let stop = false;
    let ok = 0;
    let okAfterKill = 0;
    let killed = false;
    const failures: string[] = [];
    const workers = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const result = await call('orders__get_order', { orderId: 'ord_1001' });
        if (result.isError) failures.push(JSON.stringify(result));
        else {
          ok++;
          if (killed) okAfterKill++;
        }
      }
    });
    await sleep(700);
    victim!.process.kill('SIGKILL');
    killed = true;
    await victim!.process.exited;
    await sleep(1_500);
    stop = true;
    await Promise.all(workers);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
    expect(okAfterKill).toBeGreaterThan(10);
  });

  it('S21: SIGSTOP of one of two replicas → attempt timeouts, then calls go to the healthy one', async () => {
    const [frozen] = frozenReplicas;
    for (let i = 0; i < 4; i++) {
      expect((await call('frozen__get_order', { orderId: 'ord_1001' })).isError).not.toBe(true);
    }
    frozen!.process.kill('SIGSTOP');
    const latencies: number[] = [];
    const failures: string[] = [];
    const until = performance.now() + 4_000;
    while (performance.now() < until) {
      const started = performance.now();
      const result = await call('frozen__get_order', { orderId: 'ord_1001' });
      latencies.push(performance.now() - started);
      if (result.isError) failures.push(JSON.stringify(result));
    }
    frozen!.process.kill('SIGCONT');
    expect(failures).toEqual([]);
    // The frozen replica cost an attempt timeout (1000 ms) at first...
    expect(latencies.slice(0, 3).some((ms) => ms >= 900)).toBe(true);
    // ...then its breaker and the health checks keep calls on the healthy replica.
    const tail = latencies.slice(-5);
    expect(tail).toHaveLength(5);
    for (const ms of tail) expect(ms).toBeLessThan(600);
  });
});
