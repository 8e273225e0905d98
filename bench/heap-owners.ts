/**
 * Diagnosis for P5: which structures hold the objects that appeared between two heap snapshots
 * of one process (V8 keeps an object's id across snapshots). Each new object is walked up its
 * shortest retainer path from the GC roots; its self size is charged to the nearest ancestor
 * that is a named closure or an instance of a named class (not Object/Array/system), printed as
 * `<that owner> .<edge>`, followed by `> var <name>` when the path passes through a variable of a
 * function scope (a closure's context) first. Usage: `node --import tsx bench/heap-owners.ts before after [N]`.
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

const [beforeFile, afterFile, n = '1000'] = process.argv.slice(2);
if (!beforeFile || !afterFile) throw new Error('usage: heap-owners before after [N]');
const streams = Number(n);

const idsOf = (file: string): Set<number> => {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const w = s.snapshot.meta.node_fields.length;
  const at = s.snapshot.meta.node_fields.indexOf('id');
  const ids = new Set<number>();
  for (let i = 0; i < s.nodes.length; i += w) ids.add(s.nodes[i + at]!);
  return ids;
};
const oldIds = idsOf(beforeFile);
const s = JSON.parse(readFileSync(afterFile, 'utf8')) as Snapshot;
const nf = s.snapshot.meta.node_fields;
const w = nf.length;
const [typeAt, nameAt, idAt, sizeAt, countAt] = [
  'type',
  'name',
  'id',
  'self_size',
  'edge_count',
].map((f) => nf.indexOf(f)) as [number, number, number, number, number];
const nodeTypes = s.snapshot.meta.node_types[0];
const ef = s.snapshot.meta.edge_fields;
const ew = ef.length;
const edgeTypes = s.snapshot.meta.edge_types[0];
const [eTypeAt, eNameAt, eToAt] = ['type', 'name_or_index', 'to_node'].map((f) =>
  ef.indexOf(f),
) as [number, number, number];
const count = s.nodes.length / w;
const firstEdge = new Uint32Array(count + 1);
for (let i = 0, e = 0; i < count; i++) {
  firstEdge[i] = e;
  e += s.nodes[i * w + countAt]! * ew;
}
firstEdge[count] = s.edges.length;
const parent = new Int32Array(count).fill(-1);
const parentEdgeName = new Array<string>(count);
/** Whether the edge from the parent is a variable of a function context. */
const viaVariable = new Uint8Array(count);
parent[0] = 0;
const queue = new Uint32Array(count);
let head = 0;
let tail = 0;
queue[tail++] = 0;
while (head < tail) {
  const node = queue[head++]!;
  for (let e = firstEdge[node]!; e < firstEdge[node + 1]!; e += ew) {
    const type = edgeTypes[s.edges[e + eTypeAt]!]!;
    if (type === 'weak' || type === 'shortcut') continue;
    const to = s.edges[e + eToAt]! / w;
    if (parent[to] !== -1) continue;
    parent[to] = node;
    if (type === 'context') viaVariable[to] = 1;
    const raw = s.edges[e + eNameAt]!;
    parentEdgeName[to] =
      type === 'element' || type === 'hidden' ? `[${raw}]` : String(s.strings[raw]);
    queue[tail++] = to;
  }
}
const GENERIC = new Set([
  'Object',
  'Array',
  'system / Context',
  '',
  'Generator',
  'Promise',
  'Map',
  'Set',
]);
const describe = (i: number): string | undefined => {
  const type = nodeTypes[s.nodes[i * w + typeAt]!]!;
  const name = s.strings[s.nodes[i * w + nameAt]!]!;
  if (type === 'closure' && name !== '' && name !== 'native_bind') return `closure ${name}`;
  if (type === 'object' && !GENERIC.has(name) && !name.startsWith('system /')) return name;
  return undefined;
};
const owners = new Map<string, { bytes: number; count: number }>();
let total = 0;
for (let i = 0; i < count; i++) {
  if (oldIds.has(s.nodes[i * w + idAt]!)) continue;
  const size = s.nodes[i * w + sizeAt]!;
  total += size;
  let owner = 'unreachable';
  if (parent[i] !== -1) {
    owner = '(root)';
    // The nearest variable of a function context (closure scope) on the way up, if any.
    let variable: string | undefined;
    for (let j = i, hops = 0; j !== 0 && hops < 200; j = parent[j]!, hops++) {
      const d = describe(j);
      if (d) {
        owner = j === i ? d : `${d} .${parentEdgeName[childOf(i, j)] ?? ''}`;
        if (variable !== undefined) owner += ` > var ${variable}`;
        break;
      }
      if (variable === undefined && viaVariable[j] === 1) variable = parentEdgeName[j];
    }
  }
  const o = owners.get(owner) ?? { bytes: 0, count: 0 };
  o.bytes += size;
  o.count++;
  owners.set(owner, o);
}
/** The child of ancestor `a` on the path from `i`. */
function childOf(i: number, a: number): number {
  let j = i;
  while (parent[j] !== a && j !== 0) j = parent[j]!;
  return j;
}
console.log(`new objects: ${(total / 1024 / streams).toFixed(2)} kB self size per stream`);
for (const [owner, o] of [...owners.entries()]
  .sort((x, y) => y[1].bytes - x[1].bytes)
  .slice(0, Number(process.env.TOP ?? 50))) {
  console.log(
    `${(o.bytes / streams).toFixed(0).padStart(7)} B/stream ${(o.count / streams).toFixed(1).padStart(7)} obj/stream  ${owner}`,
  );
}
