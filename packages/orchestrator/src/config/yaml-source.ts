/**
 * YAML text → plain data, plus a way to find a field's line. Duplicate keys and alias bombs
 * are refused with a {@link ConfigError} naming the file, the field and the fix.
 */
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { ConfigError } from './config-error.js';
import { describeValue, formatConfigPath } from './config-issues.js';
import type { ConfigPath } from './config-issues.js';

/** A parsed YAML mapping and the line lookup for its fields. */
export interface YamlSource {
  data: Record<string, unknown>;
  lineOf: (path: ConfigPath) => number | undefined;
}

/**
 * Parse `text` (from `file`) into a mapping. `what` says what the mapping should hold, for
 * the message when the file holds something else.
 */
export function parseYamlSource(text: string, file: string, what: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    uniqueKeys: true,
    merge: true,
    prettyErrors: true,
  });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((error) => {
        const path = error.code === 'DUPLICATE_KEY' ? pathAtOffset(doc, error.pos[0]) : [];
        const line = error.linePos?.[0];
        const problem = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        const fix =
          error.code === 'DUPLICATE_KEY'
            ? 'remove or rename one of them'
            : error.code === 'TAB_AS_INDENT'
              ? 'indent with spaces'
              : 'fix the YAML syntax';
        return {
          path: formatConfigPath(path),
          message: `${problem} — ${fix}`,
          ...(line ? { line: line.line } : {}),
        };
      }),
    );
  }
  const lineOf = (path: ConfigPath): number | undefined => {
    const offset = nodeAt(doc, path)?.range?.[0];
    return offset === undefined ? undefined : lineCounter.linePos(offset).line;
  };
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch {
    // yaml refuses alias bombs (a few lines expanding to millions of nodes) here.
    throw new ConfigError(file, [
      {
        path: '',
        message: 'too many YAML alias expansions — write the values out, or use fewer aliases',
      },
    ]);
  }
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, [
      {
        path: '',
        message: `the file holds ${describeValue(raw)} — it must be a mapping (${what})`,
      },
    ]);
  }
  return { data: raw as Record<string, unknown>, lineOf };
}

/** The YAML node at a path; for the last step, a mapping key's own node (where the field is). */
function nodeAt(doc: Document, path: ConfigPath): YamlNode | undefined {
  let node: unknown = doc.contents;
  let keyNode: unknown;
  for (const segment of path) {
    keyNode = undefined;
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(segment),
      );
      if (!pair) return undefined;
      keyNode = pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
    } else return undefined;
  }
  return ((keyNode ?? node) as YamlNode | undefined) ?? undefined;
}

/** The path of the deepest field whose key or value covers `offset` (for YAML errors). */
function pathAtOffset(doc: Document, offset: number): ConfigPath {
  const path: Array<string | number> = [];
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => covers(item.key, offset) || covers(item.value, offset),
      );
      if (!pair || !isScalar(pair.key)) return path;
      path.push(String(pair.key.value));
      if (covers(pair.key, offset)) return path;
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => covers(item, offset));
      if (index < 0) return path;
      path.push(index);
      node = node.items[index];
    } else return path;
    if (isPair(node)) return path;
  }
}

function covers(node: unknown, offset: number): boolean {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return !!range && range[0] <= offset && offset < Math.max(range[2], range[1]);
}
