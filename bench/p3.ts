/**
 * P3: session store per-turn cost at 10,000 stored messages vs the same at 10 (DESIGN.md
 * section 7: appending is O(1), reading the model's context window is O(window), never
 * O(whole history)). Target: cost_ratio_10k_vs_10 <= 1.5.
 *
 * One turn is what the orchestrator does against the Redis stores per turn: get the session,
 * take the turn lock, read the window (40 messages), store the user message, append 20 stream
 * chunks and the end marker, store the assistant message, release the lock. Turns run one at a
 * time (closed loop), alternating between the two sessions; after each, the two new messages are removed (untimed) so the history
 * stays at its size. Three runs; the figure is the median of the runs' mean-cost ratios.
 * A private redis-server (no persistence) runs on core 0, this process on core 1 (P3_REDIS_URL
 * uses an existing Redis instead).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { createRedisClient, redisReady } from '@keel/tool-sdk';
import { canPin, pinSelf } from './lib/child-server.js';
import { createRedisSessionStore } from '../packages/orchestrator/src/sessions/redis-session-store.js';
import { createRedisTurnStreamStore } from '../packages/orchestrator/src/sessions/redis-turn-stream-store.js';
import type {
  SessionStore,
  StoredMessage,
  TurnStreamStore,
} from '../packages/orchestrator/src/sessions/session-store.js';
import { loadAverage, machineInfo, writeResult } from './lib/report.js';

const TARGET = 1.5;
const SMALL = 10;
const LARGE = Number(process.env.P3_LARGE ?? 10_000);
const TURNS = Number(process.env.P3_TURNS ?? 2_000);
const WARMUP_TURNS = Number(process.env.P3_WARMUP_TURNS ?? 300);
const RUNS = Number(process.env.P3_RUNS ?? 3);
const WINDOW = 40;
const CHUNKS = 20;

type Variant = 'baseline' | 'candidate';
const SIZE: Record<Variant, number> = { baseline: SMALL, candidate: LARGE };
const LABEL: Record<Variant, string> = {
  baseline: `${SMALL} messages`,
  candidate: `${LARGE} messages`,
};

const machineCpus = cpus();
const pinned = canPin(machineCpus.length);
if (pinned) pinSelf(1);
const loadAtStart = loadAverage();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = pinned
    ? spawn('taskset', ['-c', '0', 'redis-server', ...args], { stdio: 'ignore' })
    : spawn('redis-server', args, { stdio: 'ignore' });
  return { url: `redis://127.0.0.1:${port}`, child };
}

const text = (n: number, seed: string) =>
  `${seed} `.repeat(Math.ceil(n / (seed.length + 1))).slice(0, n);
const userMessage = (id: string): StoredMessage => ({
  id,
  role: 'user',
  parts: [{ type: 'text', text: text(200, 'question'), state: 'done' }],
});
const assistantMessage = (id: string): StoredMessage => ({
  id,
  role: 'assistant',
  parts: [{ type: 'step-start' }, { type: 'text', text: text(1_000, 'answer'), state: 'done' }],
  metadata: { model: 'bench', usage: { inputTokens: 1_000, outputTokens: 250 }, costUsd: 0.001 },
});
const chunk = (i: number) =>
  JSON.stringify({ type: 'text-delta', id: 'txt-0', delta: `word${i} ` });

async function seed(sessions: SessionStore, id: string, size: number): Promise<void> {
  await sessions.create({ id, agent: 'bench', owner: { user: 'bench', tenant: 'bench' } });
  // Batches of concurrent appends: the order of the seeded history does not matter here.
  for (let from = 0; from < size; from += 200) {
    const batch: Promise<boolean>[] = [];
    for (let i = from; i < Math.min(size, from + 200); i++) {
      const m = i % 2 === 0 ? userMessage(`seed-${i}`) : assistantMessage(`seed-${i}`);
      batch.push(sessions.appendMessage(id, m));
    }
    await Promise.all(batch);
  }
}

/** One orchestrator turn against the stores; returns its wall time in µs. */
async function turn(sessions: SessionStore, streams: TurnStreamStore, id: string): Promise<number> {
  const turnId = randomUUID();
  const started = process.hrtime.bigint();
  const session = await sessions.get(id);
  if (!session) throw new Error('session missing');
  const lock = await sessions.acquireTurn(id, turnId, 30_000);
  if (!lock.ok) throw new Error('turn lock refused');
  const window = await sessions.readMessages(id, WINDOW - 1);
  if (window.length === 0) throw new Error('empty window');
  await sessions.appendMessage(id, userMessage(`u-${turnId}`));
  for (let i = 0; i < CHUNKS; i++) await streams.append(id, turnId, chunk(i));
  await streams.end(id, turnId);
  await sessions.appendMessage(id, assistantMessage(`a-${turnId}`));
  await sessions.releaseTurn(id, turnId);
  const micros = Number(process.hrtime.bigint() - started) / 1_000;
  // Untimed: put the history back to its size.
  if (!(await sessions.removeLastMessage(id, `a-${turnId}`))) throw new Error('cleanup failed');
  if (!(await sessions.removeLastMessage(id, `u-${turnId}`))) throw new Error('cleanup failed');
  return micros;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
const percentile = (values: number[], p: number) => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const round1 = (n: number) => Math.round(n * 10) / 10;
const round3 = (n: number) => Math.round(n * 1000) / 1000;

interface RunResult {
  mean_us: number;
  p50_us: number;
  p99_us: number;
}

let redisChild: ChildProcess | undefined;
const external = process.env.P3_REDIS_URL;
try {
  let url = external;
  if (!url) {
    const started = await startRedis();
    redisChild = started.child;
    url = started.url;
  }
  const redis = createRedisClient(url);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await redisReady(redis, 1_000);
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
  }
  const prefix = `keelbench-${randomUUID().slice(0, 8)}`;
  const sessions = createRedisSessionStore({ redis, prefix });
  const streams = createRedisTurnStreamStore({ redis, prefix });
  const ids: Record<Variant, string> = { baseline: 'small', candidate: 'large' };
  const seedStarted = Date.now();
  for (const variant of ['baseline', 'candidate'] as const) {
    await seed(sessions, ids[variant], SIZE[variant]);
  }
  for (const variant of ['baseline', 'candidate'] as const) {
    const count = (await sessions.get(ids[variant]))?.messageCount;
    if (count !== SIZE[variant]) throw new Error(`${LABEL[variant]}: seeded ${count}`);
  }

  console.log(
    `P3 session store per-turn cost: ${TURNS} turns per size per run, ${RUNS} runs, window ` +
      `${WINDOW}, ${CHUNKS} stream chunks + end per turn; seeded in ${Date.now() - seedStarted} ms; ` +
      (external
        ? 'external Redis'
        : pinned
          ? 'private redis-server on core 0, bench on core 1'
          : 'private redis-server, not pinned') +
      `; load average at start ${loadAtStart.join(' ')}`,
  );

  for (let i = 0; i < WARMUP_TURNS; i++) {
    await turn(sessions, streams, ids.baseline);
    await turn(sessions, streams, ids.candidate);
  }
  const runs: Record<Variant, RunResult[]> = { baseline: [], candidate: [] };
  for (let r = 0; r < RUNS; r++) {
    // The two sizes alternate turn by turn, so load from other processes on this shared
    // machine falls on both alike; the first of each pair swaps every run.
    const order: Variant[] = r % 2 === 0 ? ['baseline', 'candidate'] : ['candidate', 'baseline'];
    const times: Record<Variant, number[]> = { baseline: [], candidate: [] };
    for (let i = 0; i < TURNS; i++) {
      for (const variant of order) times[variant].push(await turn(sessions, streams, ids[variant]));
    }
    for (const variant of order) {
      const t = times[variant];
      runs[variant].push({
        mean_us: round1(t.reduce((a, b) => a + b, 0) / t.length),
        p50_us: round1(percentile(t, 50)),
        p99_us: round1(percentile(t, 99)),
      });
    }
    console.log(
      `  run ${r + 1}: ${LABEL.baseline} mean ${runs.baseline.at(-1)!.mean_us} µs/turn, ` +
        `${LABEL.candidate} mean ${runs.candidate.at(-1)!.mean_us} µs/turn`,
    );
  }
  for (const variant of ['baseline', 'candidate'] as const) {
    const count = (await sessions.get(ids[variant]))?.messageCount;
    if (count !== SIZE[variant]) throw new Error(`${LABEL[variant]}: history drifted to ${count}`);
  }

  const summarize = (variant: Variant) => ({
    stored_messages: SIZE[variant],
    mean_us_per_turn: round1(median(runs[variant].map((r) => r.mean_us))),
    p50_us_per_turn: round1(median(runs[variant].map((r) => r.p50_us))),
    p99_us_per_turn: round1(median(runs[variant].map((r) => r.p99_us))),
    runs: runs[variant],
  });
  const baseline = summarize('baseline');
  const candidate = summarize('candidate');
  // Each run pairs the two sizes turn by turn, so the ratio is taken per run, then the median.
  const runRatios = runs.candidate.map((c, i) => round3(c.mean_us / runs.baseline[i]!.mean_us));
  const figures = { cost_ratio_10k_vs_10: round3(median(runRatios)) };
  // Not a target: the same ratio on the median turn.
  const secondary = {
    run_ratios: runRatios,
    p50_ratio_10k_vs_10: round3(
      median(runs.candidate.map((c, i) => c.p50_us / runs.baseline[i]!.p50_us)),
    ),
  };
  const pass = figures.cost_ratio_10k_vs_10 <= TARGET;

  console.table({
    [LABEL.baseline]: {
      'mean µs/turn (median of runs)': baseline.mean_us_per_turn,
      'p50 µs': baseline.p50_us_per_turn,
      'p99 µs': baseline.p99_us_per_turn,
      runs: baseline.runs.map((r) => r.mean_us).join(' / '),
    },
    [LABEL.candidate]: {
      'mean µs/turn (median of runs)': candidate.mean_us_per_turn,
      'p50 µs': candidate.p50_us_per_turn,
      'p99 µs': candidate.p99_us_per_turn,
      runs: candidate.runs.map((r) => r.mean_us).join(' / '),
    },
  });
  console.log(
    `cost_ratio_10k_vs_10 = ${figures.cost_ratio_10k_vs_10} (median of run ratios ` +
      `${runRatios.join(' / ')}; target <= ${TARGET}): ${pass ? 'PASS' : 'FAIL'}`,
  );
  console.log(`(not a target) p50 ratio = ${secondary.p50_ratio_10k_vs_10}`);

  const report = {
    id: 'P3',
    date: new Date().toISOString(),
    machine: machineInfo({ loadavg_at_start: loadAtStart }),
    config: {
      turns_per_run: TURNS,
      warmup_turns: WARMUP_TURNS,
      runs: RUNS,
      window: WINDOW,
      stream_chunks_per_turn: CHUNKS,
      redis: external ? 'external' : 'private redis-server, no persistence',
      pinned: pinned && !external,
      turn: 'get, acquireTurn, readMessages(window), appendMessage(user), 20x stream append + end, appendMessage(assistant), releaseTurn',
    },
    baseline,
    candidate,
    figures,
    secondary,
    targets: { cost_ratio_10k_vs_10: `<= ${TARGET}` },
    pass,
  };
  writeResult('p3', report);

  if (external) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1_000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  }
  await streams.close();
  redis.disconnect();
  process.exitCode = pass ? 0 : 1;
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
} finally {
  redisChild?.kill('SIGTERM');
}
