/**
 * P5: memory per open SSE stream. One orchestrator replica (its own process, Redis stores, dev
 * auth) in front of the local model server (its own process). After warm-up turns (which
 * complete) and 1,000 sessions created, the orchestrator's RSS and heap are read (after a forced
 * GC); then 1,000 turns are started, each with its own SSE connection, and once every turn is
 * waiting, they are read again (after a forced GC). Two variants, each with fresh processes:
 * - `tool_wait` (the figure): the model answers at once with a call of the tool `hold__wait`,
 *   which the in-process gateway holds; every stream has shown `tool-input-available` and the
 *   gateway holds 1,000 calls. This is an open stream of a running turn, with no request to the
 *   model in flight. Target: kb_per_stream = (after - before) / 1,000 <= 32 (median over runs).
 * - `model_in_flight` (not a target): the model server holds every reply open, so each turn
 *   also holds a request of the provider SDK's HTTP client (undici fetch), which dominates.
 */
import { Agent, request } from 'node:http';
import type { ClientRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canPin, pinSelf, startServer } from './lib/child-server.js';
import type { ChildServer } from './lib/child-server.js';
import { postJson } from './lib/first-frame.js';
import { cleanOrchestratorKeys } from './lib/orchestrator-redis.js';
import { median, round3 } from './lib/stats.js';
import { loadAverage, machineInfo, writeResult } from './lib/report.js';

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
/** Runs of the model-in-flight variant (0 skips it). */
const MODEL_RUNS = Number(process.env.P5_MODEL_RUNS ?? RUNS);
type Variant = 'tool_wait' | 'model_in_flight';

const machineCpus = cpus();
const pinned = canPin(machineCpus.length);
if (pinned) pinSelf(1);
const serverCore = pinned ? 0 : undefined;
const loadAtStart = loadAverage();
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
  /** V8 heap committed (heapTotal): heap pages count in RSS whether used or not. */
  heap_total_kb: number;
  /** Memory outside the V8 heap that V8 knows of (Buffers, ArrayBuffers). */
  external_kb: number;
  /** Tool calls the orchestrator's in-process gateway holds. */
  pending_tool_calls: number;
}

async function memoryOf(orchestrator: ChildServer): Promise<Memory> {
  const match = await ask(orchestrator, /MEM (\{[^\n]*\})\n/);
  const mem = JSON.parse(match[1]!) as {
    heapUsed: number;
    heapTotal: number;
    external: number;
    pendingToolCalls: number;
  };
  return {
    rss_kb: rssKb(orchestrator.child.pid!),
    heap_used_kb: Math.round(mem.heapUsed / 1024),
    heap_total_kb: Math.round(mem.heapTotal / 1024),
    external_kb: Math.round(mem.external / 1024),
    pending_tool_calls: mem.pendingToolCalls,
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
  /** model_in_flight: requests the model server holds; tool_wait: tool calls it answered. */
  held_by_model: number;
  tool_calls_answered: number;
  pending_tool_calls: number;
}

async function run(runNo: number, variant: Variant, sessionIds: string[]): Promise<RunResult> {
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
        P_HOLD_TOOL: variant === 'tool_wait' ? '1' : '0',
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
          const marker = variant === 'tool_wait' ? '[hold-tool]' : '[hold]';
          const body = userMessage(`h-${i}`, `${marker} Where is my order?`);
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
    // Every turn waits: on the model call (model_in_flight), or with the model call finished
    // (its tool call streamed as tool-input-available) on the tool call (tool_wait).
    const waiting = (): number =>
      variant === 'tool_wait'
        ? open.filter((o) => o.state.text.includes('"type":"tool-input-available"')).length
        : STREAMS;
    let held = 0;
    let toolCalls = 0;
    for (let i = 0; i < 60; i++) {
      const counts = await ask(model, /RECEIVED (\d+) (\d+) (\d+)\n/);
      held = Number(counts[2]);
      toolCalls = Number(counts[3]);
      const done = variant === 'tool_wait' ? toolCalls >= STREAMS : held >= STREAMS;
      if (done && waiting() >= STREAMS) break;
      await sleep(500);
    }
    const failed = (): OpenStream[] => open.filter((o) => o.state.ended);
    const modelCount = variant === 'tool_wait' ? toolCalls : held;
    if (modelCount < STREAMS || waiting() < STREAMS || failed().length > 0) {
      throw new Error(
        `${variant}: model server ${variant === 'tool_wait' ? 'answered tool calls for' : 'holds'} ` +
          `${modelCount} of ${STREAMS}; ${waiting()} streams show tool-input-available; ` +
          `${failed().length} streams ended, e.g. ${failed()[0]?.state.text.slice(-300) ?? '-'}`,
      );
    }
    await sleep(SETTLE_MS);
    const after = await memoryOf(orchestrator);
    if (failed().length > 0) throw new Error(`${failed().length} streams ended while measured`);
    if (variant === 'tool_wait' && after.pending_tool_calls !== STREAMS) {
      throw new Error(`gateway holds ${after.pending_tool_calls} of ${STREAMS} tool calls`);
    }
    if (variant === 'tool_wait' && held !== 0) throw new Error(`model server holds ${held}`);
    const result: RunResult = {
      before,
      after,
      kb_per_stream: round3((after.rss_kb - before.rss_kb) / STREAMS),
      heap_kb_per_stream: round3((after.heap_used_kb - before.heap_used_kb) / STREAMS),
      open_s: round3(openS),
      held_by_model: held,
      tool_calls_answered: toolCalls,
      pending_tool_calls: after.pending_tool_calls,
    };
    console.log(
      `  ${variant} run ${runNo}: rss ${before.rss_kb} -> ${after.rss_kb} kB, heap ${before.heap_used_kb} -> ` +
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

function summarise(runs: RunResult[]) {
  return {
    baseline: {
      rss_kb: median(runs.map((r) => r.before.rss_kb)),
      heap_used_kb: median(runs.map((r) => r.before.heap_used_kb)),
      rss_runs: runs.map((r) => r.before.rss_kb),
      heap_used_runs: runs.map((r) => r.before.heap_used_kb),
      heap_total_runs: runs.map((r) => r.before.heap_total_kb),
      external_runs: runs.map((r) => r.before.external_kb),
    },
    candidate: {
      streams: STREAMS,
      rss_kb: median(runs.map((r) => r.after.rss_kb)),
      heap_used_kb: median(runs.map((r) => r.after.heap_used_kb)),
      rss_runs: runs.map((r) => r.after.rss_kb),
      heap_used_runs: runs.map((r) => r.after.heap_used_kb),
      heap_total_runs: runs.map((r) => r.after.heap_total_kb),
      external_runs: runs.map((r) => r.after.external_kb),
      kb_per_stream_runs: runs.map((r) => r.kb_per_stream),
      heap_kb_per_stream_runs: runs.map((r) => r.heap_kb_per_stream),
      open_s_runs: runs.map((r) => r.open_s),
    },
    kb_per_stream: round3(median(runs.map((r) => r.kb_per_stream))),
    heap_kb_per_stream: round3(median(runs.map((r) => r.heap_kb_per_stream))),
  };
}

try {
  console.log(
    `P5 memory per open SSE stream: ${STREAMS} streams; tool_wait ${RUNS} runs, ` +
      `model_in_flight ${MODEL_RUNS} runs (fresh processes each), ` +
      `${WARMUP_TURNS} warm-up turns; ` +
      (pinned
        ? 'model server and orchestrator on core 0, client on core 1'
        : 'not pinned (taskset or 2 cores unavailable)') +
      `; orchestrator store ${STORE}; load average at start ${loadAtStart.join(' ')}`,
  );
  const byVariant: Record<Variant, RunResult[]> = { tool_wait: [], model_in_flight: [] };
  for (const [variant, count] of [
    ['tool_wait', RUNS],
    ['model_in_flight', MODEL_RUNS],
  ] as const) {
    for (let i = 0; i < count; i++) {
      byVariant[variant].push(await run(i + 1, variant, sessionIds));
      await cleanOrchestratorKeys(REDIS_URL, sessionIds.splice(0), TENANT);
    }
  }
  const tool = summarise(byVariant.tool_wait);
  const model = byVariant.model_in_flight.length > 0 ? summarise(byVariant.model_in_flight) : null;
  const figures = {
    kb_per_stream: tool.kb_per_stream,
    kb_per_stream_model_in_flight: model?.kb_per_stream ?? null,
  };
  const verdict = { kb_per_stream: figures.kb_per_stream <= TARGETS.kb_per_stream };
  const pass = Object.values(verdict).every(Boolean);
  const { baseline, candidate } = tool;
  const secondary = {
    heap_kb_per_stream: tool.heap_kb_per_stream,
    heap_kb_per_stream_runs: tool.candidate.heap_kb_per_stream_runs,
    heap_kb_per_stream_model_in_flight: model?.heap_kb_per_stream ?? null,
  };
  const row = (m: { rss_kb: number; heap_used_kb: number; heap_total_runs: number[] }) => ({
    'rss kB': m.rss_kb,
    'heap used kB': m.heap_used_kb,
    'heap total kB': median(m.heap_total_runs),
  });
  console.table({
    'tool_wait: before (idle)': row(tool.baseline),
    [`tool_wait: ${STREAMS} streams open`]: row(tool.candidate),
    ...(model
      ? {
          'model_in_flight: before (idle)': row(model.baseline),
          [`model_in_flight: ${STREAMS} streams open`]: row(model.candidate),
        }
      : {}),
  });
  console.log(
    "tool_wait:       each turn's model call has finished (tool-input-available streamed) and " +
      "the turn waits on a slow tool call: the orchestrator's own cost of an open stream.",
  );
  console.log(
    'model_in_flight: each turn waits inside the model call, so it also holds an in-flight ' +
      "request of the provider SDK's HTTP client (undici fetch): not a target.",
  );
  console.log(
    `kb_per_stream = ${figures.kb_per_stream} (tool_wait; target <= ${TARGETS.kb_per_stream}): ` +
      `${verdict.kb_per_stream ? 'PASS' : 'FAIL'}  runs ${candidate.kb_per_stream_runs.join(' / ')}; ` +
      `heap kB per stream ${tool.heap_kb_per_stream}`,
  );
  if (model) {
    console.log(
      `(not a target) kb_per_stream_model_in_flight = ${model.kb_per_stream}  runs ` +
        `${model.candidate.kb_per_stream_runs.join(' / ')}; heap kB per stream ${model.heap_kb_per_stream}`,
    );
  }
  const report = {
    id: 'P5',
    date: new Date().toISOString(),
    machine: machineInfo({ loadavg_at_start: loadAtStart, loadavg_at_end: loadAverage() }),
    config: {
      streams: STREAMS,
      runs: RUNS,
      model_in_flight_runs: MODEL_RUNS,
      warmup_turns: WARMUP_TURNS,
      settle_ms: SETTLE_MS,
      opened_at_once: OPEN_WIDTH,
      pinned,
      measure:
        'orchestrator VmRSS (/proc/<pid>/status) and heapUsed after a forced GC, idle with ' +
        'sessions created vs with every stream past its first frame and every turn waiting',
      variants: {
        tool_wait:
          'the figure: the model answers at once with a call of hold__wait; every stream has ' +
          'streamed tool-input-available and the in-process gateway holds every call (no model ' +
          'request in flight)',
        model_in_flight:
          'not a target: the model server holds every reply, so each turn also holds an ' +
          "in-flight request of the provider SDK's HTTP client (undici fetch)",
      },
      store: STORE,
      orchestrator:
        `separate process, createOrchestrator with ${STORE === 'redis' ? 'Redis stores (127.0.0.1:6379)' : 'in-memory stores'}, ` +
        'dev auth, pino silent; in-process gateway (tool_wait: one tool hold__wait, agent tools ' +
        'hold__*; model_in_flight: no tools); one session per stream',
      model_server:
        'createLocalModelServer in its own process; [hold-tool] requests get a hold__wait tool ' +
        'call at once; [hold] replies send no headers until stopped',
    },
    baseline,
    candidate,
    model_in_flight: model
      ? {
          baseline: model.baseline,
          candidate: model.candidate,
          kb_per_stream: model.kb_per_stream,
          heap_kb_per_stream: model.heap_kb_per_stream,
        }
      : null,
    figures,
    secondary,
    targets: { kb_per_stream: `<= ${TARGETS.kb_per_stream}` },
    pass,
  };
  writeResult('p5', report);
  process.exitCode = pass ? 0 : 1;
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
} finally {
  await cleanOrchestratorKeys(REDIS_URL, sessionIds, TENANT).catch((error: unknown) => {
    console.error(`redis cleanup failed: ${error instanceof Error ? error.message : error}`);
  });
}
