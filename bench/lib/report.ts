/** What every benchmark's results file shares: the machine block and where it is written. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

/** The 1, 5 and 15 minute load averages, to two decimals. */
export function loadAverage(): number[] {
  return loadavg().map((n) => Math.round(n * 100) / 100);
}

/** `{ cpus, model, node, ...extra }` for the results file. */
export function machineInfo(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const machineCpus = cpus();
  return {
    cpus: machineCpus.length,
    model: machineCpus[0]?.model ?? 'unknown',
    node: process.version,
    ...extra,
  };
}

/** Writes `bench/results/<id>.json`. */
export function writeResult(id: string, report: unknown): void {
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${id}.json`), `${JSON.stringify(report, null, 2)}\n`);
}
