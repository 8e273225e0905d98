// Runs benchmarks: `pnpm bench` runs all, `pnpm bench p1` runs one.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ALL = ['p1', 'p2', 'p3', 'p4', 'p5'];
const wanted = process.argv.slice(2).map((a) => a.toLowerCase());
const unknown = wanted.filter((id) => !ALL.includes(id));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${ALL.join(', ')}`);
  process.exit(2);
}
let failed = false;
for (const id of wanted.length > 0 ? wanted : ALL) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, `${id}.ts`)], {
    cwd: here,
    stdio: 'inherit',
  });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
