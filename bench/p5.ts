/**
 * P5: memory per open SSE stream. One orchestrator replica (its own process, Redis stores, dev
 * auth, no tools) in front of the local model server (its own process), which holds every reply
 * to a `[hold]` message open. After warm-up turns (which complete) and 1,000 sessions created,
 * the orchestrator's RSS is read (after a forced GC); then 1,000 turns are started, each with
 * its own SSE connection, and once every stream has its first frame and the model server holds
 * all 1,000 requests, RSS is read again (after a forced GC). Target: kb_per_stream =
 * (after - before) / 1,000 <= 32 (median over runs, each with fresh processes).
 */
import { Agent, request } from 'node:http';
import type { ClientRequest } from 'node:http';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canPin, pinSelf, startServer } from './lib/child-server.js';
import type { ChildServer } from './lib/child-server.js';
import { postJson } from './lib/first-frame.js';
import { cleanOrchestratorKeys } from './lib/orchestrator-redis.js';
import { median, round3 } from './lib/stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const TARGETS = { kb_per_stream: 32 };
const STREAMS = Number(process.env.P5_STREAMS ?? 1_000);
const WARMUP_TURNS = Number(process.env.P5_WARMUP ?? 200);
const RUNS = Number(process.env.P5_RUNS ?? 3);
const SETTLE_MS = Number(process.env.P5_SETTLE_MS ?? 2_000);
const OPEN_TIMEOUT_MS = 120_000;
/** Streams being opened at once (a ramp, not a burst: this measures memory, not burst capacity). */
const OPEN_WIDTH = Number(process.env.P5_OPEN_WIDTH ?? 50);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TENANT = `bench-p5-${process.pid}`;
/** `memory` runs the orchestrator on its in-memory stores instead (a comparison, not the figure). */
const STORE = process.env.P5_STORE === 'memory' ? 'memory' : 'redis';

const machineCpus = cpus();
const pinned = canPin(machineCpus.length);
if (pinned) pinSelf(1);
const serverCore = pinned ? 0 : undefined;
const loadAtStart = loadavg().map((n) => Math.round(n * 100) / 100);
const identity = { 'x-keel-user': 'bench-user', 'x-keel-tenant': TENANT };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** VmRSS of a process, in kB. */
function rssKb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]);
}

/** Send SIGUSR2 and wait for the child's reply line. */
function ask(server: ChildServer, pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      server.child.stdout?.off('data', onData);
      reject(new Error(`no ${pattern} from child`));
    }, 60_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const match = pattern.exec(out);
      if (!match) return;
      clearTimeout(timer);
      server.child.stdout?.off('data', onData);
      resolve(match);
    };
    server.child.stdout?.on('data', onData);
    server.child.kill('SIGUSR2');
  });
}

interface Memory {
  rss_kb: number;
  heap_used_kb: number;
  external_kb: number;
}

async function memoryOf(orchestrator: ChildServer): Promise<Memory> {
  const match = await ask(orchestrator, /MEM (\{[^\n]*\})\n/);
  const mem = JSON.parse(match[1]!) as { heapUsed: number; external: number };
  return {
    rss_kb: rssKb(orchestrator.child.pid!),
    heap_used_kb: Math.round(mem.heapUsed / 1024),
    external_kb: Math.round(mem.external / 1024),
  };
}

const userMessage = (id: string, text: string) =>
  JSON.stringify({ id, role: 'user', parts: [{ type: 'text', text }] });

interface OpenStream {
  readonly req: ClientRequest;
  /** The body so far, while the stream stays open; `ended` once the server ended it. */
  readonly state: { text: string; ended: boolean };
}

/** POST a turn; resolves on its first SSE frame with the open request, still read on. */
function openStream(
  port: number,
  sessionId: string,
  body: string,
  agent: Agent,
): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const state = { text: '', ended: false };
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: `/v1/sessions/${sessionId}/messages`,
        method: 'POST',
        headers: {
          ...identity,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
        },
        agent,
      },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`stream ${sessionId}: HTTP ${res.statusCode}`));
          res.resume();
          return;
        }
        let resolved = false;
        res.on('data', (chunk: Buffer) => {
          state.text += chunk.toString();
          if (!resolved && state.text.includes('data: ')) {
            resolved = true;
            resolve({ req, state });
          }
        });
        res.on('end', () => {
          state.ended = true;
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs a whole (unheld) turn to its end. */
function fullTurn(port: number, sessionId: string, body: string, agent: Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: `/v1/sessions/${sessionId}/messages`,
        method: 'POST',
        headers: {
          ...identity,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
        },
        agent,
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function inBatches<T>(count: number, width: number, fn: (i: number) => Promise<T>) {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

/** Waits until /readyz answers 200 (Redis reachable again after a long pause, e.g. a snapshot). */
async function ready(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await sleep(100);
  }
  throw new Error('orchestrator not ready');
}

interface RunResult {
  before: Memory;
  after: Memory;
  kb_per_stream: number;
  heap_kb_per_stream: number;
  open_s: number;
  held_by_model: number;
}

async function run(runNo: number, sessionIds: string[]): Promise<RunResult> {
  const children: ChildServer[] = [];
  const open: OpenStream[] = [];
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const control = new Agent({ keepAlive: true, maxSockets: 20 });
  try {
    const model = await startServer(join(here, 'p4-model.ts'), {}, serverCore);
    children.push(model);
    const orchestrator = await startServer(
      join(here, 'p4-orchestrator.ts'),
      {
        REDIS_URL,
        P_MODEL_URL: `http://127.0.0.1:${model.port}`,
        P_GC_HOOK: '1',
        P_STORE: STORE,
      },
      serverCore,
    );
    children.push(orchestrator);
    const port = orchestrator.port;
    const newSession = async (): Promise<string> => {
      const r = await postJson(port, '/v1/sessions', identity, { agent: 'support' }, control);
      const id = (r.json as { id?: string }).id;
      if (r.status !== 201 || id === undefined) {
        throw new Error(`session create failed: ${r.status} ${JSON.stringify(r.json)}`);
      }
      sessionIds.push(id);
      return id;
    };

    // Warm-up: whole turns (the model answers at once), 20 at a time.
    await inBatches(WARMUP_TURNS, 20, async (i) => {
      const text = await fullTurn(
        port,
        await newSession(),
        userMessage(`w-${i}`, 'Where is my order?'),
        control,
      );
      if (!text.includes('"type":"text-delta"') || !text.includes('[DONE]')) {
        throw new Error(`warm-up turn invalid: ${text.slice(0, 300)}`);
      }
    });
    const ids = await inBatches(STREAMS, 20, () => newSession());
    control.destroy();
    await sleep(SETTLE_MS);
    const before = await memoryOf(orchestrator);
    await ready(port);

    const started = process.hrtime.bigint();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        inBatches(ids.length, OPEN_WIDTH, async (i) => {
          const body = userMessage(`h-${i}`, '[hold] Where is my order?');
          open.push(await openStream(port, ids[i]!, body, agent));
        }),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`only ${open.length} of ${STREAMS} streams opened`)),
            OPEN_TIMEOUT_MS,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    const openS = Number(process.hrtime.bigint() - started) / 1e9;
    // Every turn has reached the model call and waits on it.
    let held = 0;
    for (let i = 0; i < 60 && held < STREAMS; i++) {
      held = Number((await ask(model, /RECEIVED (\d+) (\d+)\n/))[2]);
      if (held < STREAMS) await sleep(500);
    }
    const failed = (): OpenStream[] => open.filter((o) => o.state.ended);
    if (held < STREAMS || failed().length > 0) {
      throw new Error(
        `model server holds ${held} of ${STREAMS} requests; ${failed().length} streams ended, ` +
          `e.g. ${failed()[0]?.state.text.slice(-300) ?? '-'}`,
      );
    }
    await sleep(SETTLE_MS);
    const after = await memoryOf(orchestrator);
    if (failed().length > 0) throw new Error(`${failed().length} streams ended while measured`);
    const result: RunResult = {
      before,
      after,
      kb_per_stream: round3((after.rss_kb - before.rss_kb) / STREAMS),
      heap_kb_per_stream: round3((after.heap_used_kb - before.heap_used_kb) / STREAMS),
      open_s: round3(openS),
      held_by_model: held,
    };
    console.log(
      `  run ${runNo}: rss ${before.rss_kb} -> ${after.rss_kb} kB, heap ${before.heap_used_kb} -> ` +
        `${after.heap_used_kb} kB; ${STREAMS} streams open in ${result.open_s} s; ` +
        `${result.kb_per_stream} kB rss / stream, ${result.heap_kb_per_stream} kB heap / stream`,
    );
    return result;
  } finally {
    for (const o of open) o.req.destroy();
    agent.destroy();
    control.destroy();
    await Promise.all(children.reverse().map((c) => c.stop()));
  }
}

const sessionIds: string[] = [];
try {
  console.log(
    `P5 memory per open SSE stream: ${STREAMS} streams, ${RUNS} runs (fresh processes each), ` +
      `${WARMUP_TURNS} warm-up turns; ` +
      (pinned
        ? 'model server and orchestrator on core 0, client on core 1'
        : 'not pinned (taskset or 2 cores unavailable)') +
      `; orchestrator store ${STORE}; load average at start ${loadAtStart.join(' ')}`,
  );
  const runs: RunResult[] = [];
  for (let i = 0; i < RUNS; i++) {
    runs.push(await run(i + 1, sessionIds));
    await cleanOrchestratorKeys(REDIS_URL, sessionIds.splice(0), TENANT);
  }
  const figures = { kb_per_stream: round3(median(runs.map((r) => r.kb_per_stream))) };
  const verdict = { kb_per_stream: figures.kb_per_stream <= TARGETS.kb_per_stream };
  const pass = Object.values(verdict).every(Boolean);
  const baseline = {
    rss_kb: median(runs.map((r) => r.before.rss_kb)),
    heap_used_kb: median(runs.map((r) => r.before.heap_used_kb)),
    rss_runs: runs.map((r) => r.before.rss_kb),
  };
  const candidate = {
    streams: STREAMS,
    rss_kb: median(runs.map((r) => r.after.rss_kb)),
    heap_used_kb: median(runs.map((r) => r.after.heap_used_kb)),
    rss_runs: runs.map((r) => r.after.rss_kb),
    kb_per_stream_runs: runs.map((r) => r.kb_per_stream),
    open_s_runs: runs.map((r) => r.open_s),
  };
  const secondary = {
    heap_kb_per_stream: round3(median(runs.map((r) => r.heap_kb_per_stream))),
    heap_kb_per_stream_runs: runs.map((r) => r.heap_kb_per_stream),
  };
  console.table({
    'before (idle)': { 'rss kB': baseline.rss_kb, 'heap used kB': baseline.heap_used_kb },
    [`${STREAMS} streams open`]: {
      'rss kB': candidate.rss_kb,
      'heap used kB': candidate.heap_used_kb,
    },
  });
  console.log(
    `kb_per_stream = ${figures.kb_per_stream} (target <= ${TARGETS.kb_per_stream}): ` +
      `${verdict.kb_per_stream ? 'PASS' : 'FAIL'}  runs ${candidate.kb_per_stream_runs.join(' / ')}`,
  );
  console.log(`(not a target) heap kB per stream ${secondary.heap_kb_per_stream}`);
  const report = {
    id: 'P5',
    date: new Date().toISOString(),
    machine: {
      cpus: machineCpus.length,
      model: machineCpus[0]?.model ?? 'unknown',
      node: process.version,
      loadavg_at_start: loadAtStart,
      loadavg_at_end: loadavg().map((n) => Math.round(n * 100) / 100),
    },
    config: {
      streams: STREAMS,
      runs: RUNS,
      warmup_turns: WARMUP_TURNS,
      settle_ms: SETTLE_MS,
      opened_at_once: OPEN_WIDTH,
      pinned,
      measure:
        'orchestrator VmRSS (/proc/<pid>/status) after a forced GC, idle with sessions created ' +
        'vs with every stream past its first frame and every turn waiting on the model',
      store: STORE,
      orchestrator:
        `separate process, createOrchestrator with ${STORE === 'redis' ? 'Redis stores (127.0.0.1:6379)' : 'in-memory stores'}, ` +
        'dev auth, no tools, pino silent; one session per stream',
      model_server:
        'createLocalModelServer in its own process; held replies send no headers until stopped',
    },
    baseline,
    candidate,
    figures,
    secondary,
    targets: { kb_per_stream: `<= ${TARGETS.kb_per_stream}` },
    pass,
  };
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'p5.json'), `${JSON.stringify(report, null, 2)}\n`);
  process.exitCode = pass ? 0 : 1;
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
} finally {
  await cleanOrchestratorKeys(REDIS_URL, sessionIds, TENANT).catch((error: unknown) => {
    console.error(`redis cleanup failed: ${error instanceof Error ? error.message : error}`);
  });
}
