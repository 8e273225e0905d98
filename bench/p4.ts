/**
 * P4: time to first token through the orchestrator vs reading the same local model server
 * directly. The model server (its own process) answers every request with the same ~180-character
 * text, streamed. Baseline: a streamed Anthropic Messages request straight to it, timed from
 * request start to the first `text_delta` event. Candidate: one orchestrator replica (its own
 * process, Redis stores, dev auth, a tool gateway with no tools) relaying that model, timed from
 * the start of `POST /v1/sessions/:id/messages` to the first `text-delta` SSE frame. Both
 * clients are the same node:http reader, requests sequential, a new session per turn (created
 * untimed). Target: added_ttft_p50_ms <= 5 (median over runs of candidate p50 - baseline p50).
 */
import { Agent } from 'node:http';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canPin, pinSelf, startServer } from './lib/child-server.js';
import type { ChildServer } from './lib/child-server.js';
import { postJson, timeStream } from './lib/first-frame.js';
import type { StreamTiming } from './lib/first-frame.js';
import { cleanOrchestratorKeys } from './lib/orchestrator-redis.js';
import { median, percentile, round3 } from './lib/stats.js';
import { loadAverage, machineInfo, writeResult } from './lib/report.js';

const here = dirname(fileURLToPath(import.meta.url));
const TARGETS = { added_ttft_p50_ms: 5 };
const REQUESTS = Number(process.env.P4_REQUESTS ?? 300);
const WARMUP = Number(process.env.P4_WARMUP ?? 100);
const RUNS = Number(process.env.P4_RUNS ?? 3);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TENANT = `bench-p4-${process.pid}`;
/** `memory` runs the orchestrator on its in-memory stores instead (a comparison, not the figure). */
const STORE = process.env.P4_STORE === 'memory' ? 'memory' : 'redis';
const USER_TEXT = 'Where is my order #4411? It was supposed to arrive yesterday.';

type Variant = 'baseline' | 'candidate';
const LABEL: Record<Variant, string> = { baseline: 'direct', candidate: 'orchestrator' };

const machineCpus = cpus();
const pinned = canPin(machineCpus.length);
if (pinned) pinSelf(1);
const serverCore = pinned ? 0 : undefined;
const loadAtStart = loadAverage();

const children: ChildServer[] = [];
const sessionIds: string[] = [];
const agent = new Agent({ keepAlive: true, maxSockets: 4 });

interface RunResult {
  p50_ms: number;
  p99_ms: number;
  mean_total_ms: number;
  requests: number;
}

try {
  const model = await startServer(join(here, 'p4-model.ts'), {}, serverCore);
  children.push(model);
  const orchestrator = await startServer(
    join(here, 'p4-orchestrator.ts'),
    { REDIS_URL, P_MODEL_URL: `http://127.0.0.1:${model.port}`, P_STORE: STORE },
    serverCore,
  );
  children.push(orchestrator);

  const identity = { 'x-keel-user': 'bench-user', 'x-keel-tenant': TENANT };
  const direct = (): Promise<StreamTiming> =>
    timeStream({
      port: model.port,
      path: '/v1/messages',
      headers: {
        'content-type': 'application/json',
        'x-api-key': 'local',
        'anthropic-version': '2023-06-01',
        accept: 'text/event-stream',
      },
      body: JSON.stringify({
        model: 'claude-local',
        max_tokens: 1024,
        system: 'You are a support agent.',
        messages: [{ role: 'user', content: [{ type: 'text', text: USER_TEXT }] }],
        stream: true,
      }),
      marker: '"text_delta"',
      agent,
    });
  let turnNo = 0;
  const viaOrchestrator = async (): Promise<StreamTiming> => {
    const created = await postJson(
      orchestrator.port,
      '/v1/sessions',
      identity,
      { agent: 'support' },
      agent,
    );
    const id = (created.json as { id?: string }).id;
    if (created.status !== 201 || id === undefined) {
      throw new Error(`session create failed: ${created.status} ${JSON.stringify(created.json)}`);
    }
    sessionIds.push(id);
    return timeStream({
      port: orchestrator.port,
      path: `/v1/sessions/${id}/messages`,
      headers: { ...identity, 'content-type': 'application/json' },
      body: JSON.stringify({
        id: `m-${++turnNo}`,
        role: 'user',
        parts: [{ type: 'text', text: USER_TEXT }],
      }),
      marker: '"type":"text-delta"',
      agent,
    });
  };
  const call: Record<Variant, () => Promise<StreamTiming>> = {
    baseline: direct,
    candidate: viaOrchestrator,
  };
  const check = (variant: Variant, t: StreamTiming): void => {
    const complete =
      variant === 'baseline' ? t.body.includes('message_stop') : t.body.includes('[DONE]');
    if (t.status !== 200 || Number.isNaN(t.first_ms) || !complete || t.body.includes('"error"')) {
      throw new Error(`${LABEL[variant]} turn invalid: ${t.status} ${t.body.slice(0, 300)}`);
    }
  };
  const measure = async (variant: Variant, n: number): Promise<RunResult> => {
    const firsts: number[] = [];
    const totals: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = await call[variant]();
      check(variant, t);
      firsts.push(t.first_ms);
      totals.push(t.total_ms);
    }
    firsts.sort((a, b) => a - b);
    return {
      p50_ms: round3(percentile(firsts, 50)),
      p99_ms: round3(percentile(firsts, 99)),
      mean_total_ms: round3(totals.reduce((a, b) => a + b, 0) / totals.length),
      requests: n,
    };
  };

  console.log(
    `P4 time to first token: ${RUNS} runs x ${REQUESTS} sequential turns per variant after ` +
      `${WARMUP} warm-up turns; ` +
      (pinned
        ? 'model server and orchestrator on core 0, client on core 1'
        : 'not pinned (taskset or 2 cores unavailable)') +
      `; orchestrator store ${STORE}; load average at start ${loadAtStart.join(' ')}`,
  );

  const runs: Record<Variant, RunResult[]> = { baseline: [], candidate: [] };
  for (let i = 0; i < RUNS; i++) {
    const order: Variant[] = i % 2 === 0 ? ['baseline', 'candidate'] : ['candidate', 'baseline'];
    for (const variant of order) {
      await measure(variant, WARMUP);
      runs[variant].push(await measure(variant, REQUESTS));
    }
    for (const variant of ['baseline', 'candidate'] as const) {
      const r = runs[variant].at(-1)!;
      console.log(
        `  run ${i + 1} ${LABEL[variant].padEnd(12)} ttft p50 ${r.p50_ms} ms  p99 ${r.p99_ms} ms  ` +
          `(whole reply mean ${r.mean_total_ms} ms)`,
      );
    }
  }

  const summarize = (variant: Variant) => ({
    ttft_p50_ms: round3(median(runs[variant].map((r) => r.p50_ms))),
    ttft_p99_ms: round3(median(runs[variant].map((r) => r.p99_ms))),
    whole_reply_mean_ms: round3(median(runs[variant].map((r) => r.mean_total_ms))),
    p50_runs: runs[variant].map((r) => r.p50_ms),
    p99_runs: runs[variant].map((r) => r.p99_ms),
    requests: runs[variant].reduce((n, r) => n + r.requests, 0),
  });
  const baseline = summarize('baseline');
  const candidate = summarize('candidate');
  const addedRuns = runs.candidate.map((r, i) => round3(r.p50_ms - runs.baseline[i]!.p50_ms));
  const figures = {
    added_ttft_p50_ms: round3(median(addedRuns)),
  };
  const secondary = {
    added_ttft_p99_ms: round3(
      median(runs.candidate.map((r, i) => r.p99_ms - runs.baseline[i]!.p99_ms)),
    ),
    added_ttft_p50_ms_runs: addedRuns,
  };
  const verdict = { added_ttft_p50_ms: figures.added_ttft_p50_ms <= TARGETS.added_ttft_p50_ms };
  const pass = Object.values(verdict).every(Boolean);

  console.table({
    direct: {
      'ttft p50 ms': baseline.ttft_p50_ms,
      'ttft p99 ms': baseline.ttft_p99_ms,
      'p50 runs': baseline.p50_runs.join(' / '),
    },
    orchestrator: {
      'ttft p50 ms': candidate.ttft_p50_ms,
      'ttft p99 ms': candidate.ttft_p99_ms,
      'p50 runs': candidate.p50_runs.join(' / '),
    },
  });
  console.log(
    `added_ttft_p50_ms = ${figures.added_ttft_p50_ms} (target <= ${TARGETS.added_ttft_p50_ms}): ` +
      `${verdict.added_ttft_p50_ms ? 'PASS' : 'FAIL'}`,
  );
  console.log(`(not a target) added ttft p99 ${secondary.added_ttft_p99_ms} ms`);

  const report = {
    id: 'P4',
    date: new Date().toISOString(),
    machine: machineInfo({ loadavg_at_start: loadAtStart, loadavg_at_end: loadAverage() }),
    config: {
      requests_per_run: REQUESTS,
      warmup_requests: WARMUP,
      runs: RUNS,
      pinned,
      client: 'node:http keep-alive, sequential, same reader for both',
      store: STORE,
      orchestrator:
        `separate process, createOrchestrator with ${STORE === 'redis' ? 'Redis stores (127.0.0.1:6379)' : 'in-memory stores'}, ` +
        'dev auth, no tools, pino silent; a new session per turn (created untimed)',
      model_server: 'createLocalModelServer in its own process, ~180-character reply, chunk size 8',
    },
    baseline,
    candidate,
    figures,
    secondary,
    targets: { added_ttft_p50_ms: `<= ${TARGETS.added_ttft_p50_ms}` },
    pass,
  };
  writeResult('p4', report);
  process.exitCode = pass ? 0 : 1;
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
} finally {
  agent.destroy();
  await Promise.all(children.reverse().map((c) => c.stop()));
  await cleanOrchestratorKeys(REDIS_URL, sessionIds, TENANT).catch((error: unknown) => {
    console.error(`redis cleanup failed: ${error instanceof Error ? error.message : error}`);
  });
}
