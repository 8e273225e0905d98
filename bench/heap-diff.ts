/**
 * Diagnosis for P5: diffs two V8 heap snapshots (before / after opening N streams) by object
 * group (type + constructor or function name) and prints the groups that grew most, per stream.
 * Usage: `node --import tsx bench/heap-diff.ts before.heapsnapshot after.heapsnapshot [N]
 * [--strings]` (`--strings` also lists the string prefixes that grew most).
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

interface Group {
  count: number;
  bytes: number;
}

function groups(file: string, strings: boolean): Map<string, Group> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const out = new Map<string, Group>();
  const add = (key: string, bytes: number) => {
    const g = out.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += bytes;
    out.set(key, g);
  };
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!]!;
    const name = snap.strings[snap.nodes[i + nameAt]!]!;
    const bytes = snap.nodes[i + sizeAt]!;
    let key: string;
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') {
      key = strings ? `(string) ${JSON.stringify(name.slice(0, 60))}` : '(string)';
    } else if (type === 'object' || type === 'closure' || type === 'native') {
      key = `${type} ${name}`;
    } else {
      key = `(${type}) ${type === 'array' || type === 'hidden' ? name : ''}`.trim();
    }
    add(key, bytes);
  }
  return out;
}

const [beforeFile, afterFile, n = '1000', ...flags] = process.argv.slice(2);
if (!beforeFile || !afterFile) throw new Error('usage: heap-diff before after [N] [--strings]');
const streams = Number(n);
const strings = flags.includes('--strings');
const before = groups(beforeFile, strings);
const after = groups(afterFile, strings);
const rows = [...after.entries()]
  .map(([key, g]) => {
    const b = before.get(key) ?? { count: 0, bytes: 0 };
    return { key, count: g.count - b.count, bytes: g.bytes - b.bytes };
  })
  .sort((x, y) => y.bytes - x.bytes);
const total = rows.reduce((sum, r) => sum + r.bytes, 0);
console.log(`total self size growth ${(total / 1024 / streams).toFixed(2)} kB per stream`);
for (const r of rows.slice(0, Number(process.env.TOP ?? 45))) {
  console.log(
    `${(r.bytes / streams).toFixed(0).padStart(7)} B/stream  ${(r.count / streams)
      .toFixed(2)
      .padStart(7)} /stream  ${r.key}`,
  );
}
