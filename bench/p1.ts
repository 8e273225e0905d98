/**
 * P1: tool server throughput. A Keel tool server (50 trivial tools, call-token verification on)
 * against a plain express handler doing the same work. Target: throughput_ratio >= 0.70.
 */
import { exportJWK, generateKeyPair } from 'jose';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canPin, pinSelf, startServer } from './lib/child-server.js';
import { runLoad } from './lib/load.js';
import type { LoadResult } from './lib/load.js';
import { KID } from './lib/p1-shared.js';
import { presignCalls } from './lib/tokens.js';
import { machineInfo, writeResult } from './lib/report.js';

const here = dirname(fileURLToPath(import.meta.url));
const TARGET = 0.7;
const CONNECTIONS = Number(process.env.P1_CONNECTIONS ?? 10);
const DURATION_S = Number(process.env.P1_DURATION_S ?? 10);
const RUNS = Number(process.env.P1_RUNS ?? 3);
const WARMUP_REQUESTS = Number(process.env.P1_WARMUP_REQUESTS ?? 3_000);

type Variant = 'baseline' | 'candidate';
const SCRIPTS: Record<Variant, string> = {
  baseline: join(here, 'p1-server-baseline.ts'),
  candidate: join(here, 'p1-server-sdk.ts'),
};

const machineCpus = cpus();
const pinned = canPin(machineCpus.length);
if (pinned) pinSelf(1);

const { publicKey, privateKey } = await generateKeyPair('EdDSA', { extractable: true });
const publicJwk = { ...(await exportJWK(publicKey)), kid: KID, alg: 'EdDSA' };

async function measure(variant: Variant): Promise<LoadResult> {
  const server = await startServer(
    SCRIPTS[variant],
    { P1_PUBLIC_JWK: JSON.stringify(publicJwk) },
    pinned ? 0 : undefined,
  );
  try {
    const warm = await runLoad(server.port, presignCalls(privateKey, WARMUP_REQUESTS), {
      connections: CONNECTIONS,
      amount: WARMUP_REQUESTS,
    });
    assertClean(variant, 'warmup', warm);
    // Enough unique tokens for the run with a wide margin over the warmed-up rate.
    const count = Math.ceil(warm.req_per_s * DURATION_S * 1.6) + 5_000;
    const calls = presignCalls(privateKey, count);
    const result = await runLoad(server.port, calls, {
      connections: CONNECTIONS,
      durationS: DURATION_S,
    });
    if (result.exhausted) throw new Error(`${variant}: ran out of pre-signed tokens (${count})`);
    assertClean(variant, 'run', result);
    return result;
  } finally {
    await server.stop();
  }
}

function assertClean(variant: Variant, phase: string, r: LoadResult): void {
  if (r.non2xx > 0 || r.errors > 0 || r.rpc_errors > 0) {
    throw new Error(
      `${variant} ${phase} invalid: non2xx=${r.non2xx} errors=${r.errors} rpc_errors=${r.rpc_errors}`,
    );
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function summarize(runs: LoadResult[]) {
  return {
    req_per_s: Math.round(median(runs.map((r) => r.req_per_s))),
    latency_p50_ms: median(runs.map((r) => r.latency_p50_ms)),
    latency_p99_ms: median(runs.map((r) => r.latency_p99_ms)),
    runs: runs.map((r) => Math.round(r.req_per_s)),
    requests: runs.reduce((n, r) => n + r.requests, 0),
    non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
  };
}

console.log(
  `P1 tool server throughput: ${CONNECTIONS} connections, ${DURATION_S}s x ${RUNS} runs each, ` +
    (pinned ? 'server on core 0, load on core 1' : 'not pinned (taskset or 2 cores unavailable)'),
);
const results: Record<Variant, LoadResult[]> = { baseline: [], candidate: [] };
for (let i = 0; i < RUNS; i++) {
  const order: Variant[] = i % 2 === 0 ? ['baseline', 'candidate'] : ['candidate', 'baseline'];
  for (const variant of order) {
    const r = await measure(variant);
    results[variant].push(r);
    console.log(
      `  run ${i + 1} ${variant.padEnd(9)} ${Math.round(r.req_per_s).toString().padStart(7)} req/s  ` +
        `p50 ${r.latency_p50_ms} ms  p99 ${r.latency_p99_ms} ms`,
    );
  }
}

const baseline = summarize(results.baseline);
const candidate = summarize(results.candidate);
const ratio = Math.round((candidate.req_per_s / baseline.req_per_s) * 1000) / 1000;
const pass = ratio >= TARGET;

console.table({
  baseline: {
    'req/s (median)': baseline.req_per_s,
    'p50 ms': baseline.latency_p50_ms,
    'p99 ms': baseline.latency_p99_ms,
    runs: baseline.runs.join(' / '),
  },
  candidate: {
    'req/s (median)': candidate.req_per_s,
    'p50 ms': candidate.latency_p50_ms,
    'p99 ms': candidate.latency_p99_ms,
    runs: candidate.runs.join(' / '),
  },
});
console.log(`throughput_ratio = ${ratio} (target >= ${TARGET}): ${pass ? 'PASS' : 'FAIL'}`);

const report = {
  id: 'P1',
  date: new Date().toISOString(),
  machine: machineInfo(),
  config: { connections: CONNECTIONS, duration_s: DURATION_S, runs: RUNS, tools: 50, pinned },
  baseline,
  candidate,
  figures: { throughput_ratio: ratio },
  targets: { throughput_ratio: `>= ${TARGET.toFixed(2)}` },
  pass,
};
writeResult('p1', report);
process.exitCode = pass ? 0 : 1;
