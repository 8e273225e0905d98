/**
 * Problems found in a config file (agent, models.yaml), said so a person can fix them: the file, the field path
 * (`servers[1].urls[0]`), what is wrong, and what to write instead.
 */
import type { z } from 'zod';

/** A path into the config document: object keys and list indexes. */
export type ConfigPath = ReadonlyArray<string | number>;

/** One problem of a config file. */
export interface ConfigIssue {
  /** The field, as `servers[1].urls[0]`; empty for the whole file. */
  path: string;
  /** What is wrong and how to fix it: `"Orders" is not a valid server id — use ...`. */
  message: string;
  /** 1-based line in the file, when known. */
  line?: number;
  /** The file, when it is not the one the error is about (cross-file checks). */
  file?: string;
}

const MAX_LISTED = 20;

/**
 * One line per issue, `file:line: field: problem — fix`, e.g.
 * `agents/support.yaml:4: limits.maxSteps: expected a number, got "ten" — write a number`.
 *
 * @example
 * ```ts
 * formatConfigIssues('models.yaml', [{ path: 'models', message: 'is missing — add it', line: 1 }]);
 * // 'models.yaml:1: models: is missing — add it'
 * ```
 */
export function formatConfigIssues(file: string, issues: readonly ConfigIssue[]): string {
  const lines = issues.slice(0, MAX_LISTED).map((issue) => {
    const where = issue.path === '' ? '' : `${issue.path}: `;
    const line = issue.line === undefined ? '' : `:${issue.line}`;
    return `${issue.file ?? file}${line}: ${where}${issue.message}`;
  });
  if (issues.length > MAX_LISTED) {
    lines.push(`${file}: ... and ${issues.length - MAX_LISTED} more problems`);
  }
  return lines.join('\n');
}

/** `['servers', 1, 'urls', 0]` → `servers[1].urls[0]`. */
export function formatConfigPath(path: ConfigPath): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    // Record keys (tool names) may hold any character.
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** A value shown back to the user: short, and never a field that may hold a secret. */
export function describeValue(value: unknown, path: ConfigPath = []): string {
  const last = path.at(-1);
  if (typeof last === 'string' && /secret|token|password|sha256/i.test(last)) return 'the value';
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return JSON.stringify(shown);
  }
  return String(value);
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping (key: value lines)',
  record: 'a mapping (key: value lines)',
};

/**
 * Turn zod issues of a parse (made with `reportInput: true`) into {@link ConfigIssue}s.
 * `schema` is the schema that was parsed, so an unknown field can be answered with the
 * known ones; `lineOf` finds a path's line in the source.
 */
export function issuesFromZod(
  error: z.ZodError,
  schema: z.ZodType,
  lineOf: (path: ConfigPath) => number | undefined = () => undefined,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const path = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(schema, path);
      for (const key of issue.keys) {
        const fieldPath = [...path, key];
        issues.push({
          path: formatConfigPath(fieldPath),
          message: unknownFieldMessage(key, known),
          ...lineField(lineOf(fieldPath)),
        });
      }
      continue;
    }
    issues.push({
      path: formatConfigPath(path),
      message: zodIssueMessage(issue, path),
      ...lineField(lineOf(path)),
    });
  }
  return issues;
}

function lineField(line: number | undefined): { line?: number } {
  return line === undefined ? {} : { line };
}

function zodIssueMessage(issue: z.core.$ZodIssue, path: ConfigPath): string {
  const input = issue.input;
  switch (issue.code) {
    case 'invalid_type': {
      const expected = EXPECTED[issue.expected] ?? issue.expected;
      if (input === undefined) return `is missing — add it (${expected})`;
      const hint =
        issue.expected === 'number' &&
        typeof input === 'string' &&
        /^\s*-?\d+(\.\d+)?\s*$/.test(input)
          ? ' (without quotes)'
          : issue.expected === 'array'
            ? ' ("- item" lines, or [a, b])'
            : '';
      return `expected ${expected}, got ${describeValue(input, path)} — write ${expected}${hint}`;
    }
    case 'invalid_value':
      return `${describeValue(input, path)} is not allowed — use one of ${issue.values
        .map((v) => JSON.stringify(v))
        .join(', ')}`;
    case 'invalid_union': {
      if ('discriminator' in issue && typeof issue.discriminator === 'string') {
        const options = (issue as { options?: unknown[] }).options ?? [];
        const value =
          typeof input === 'object' && input !== null
            ? (input as Record<string, unknown>)[issue.discriminator]
            : undefined;
        const list = options.map((v) => JSON.stringify(v)).join(', ');
        return value === undefined
          ? `is missing — add it, one of ${list}`
          : `${describeValue(value, path)} is not allowed — use one of ${list}`;
      }
      if (issue.message !== 'Invalid input')
        return `${describeValue(input, path)} ${issue.message}`;
      return `${describeValue(input, path)} does not match any allowed form — check this field against the documentation`;
    }
    case 'invalid_key': {
      // A record key (a model alias, a handler name) that breaks the key's rule.
      const inner = issue.issues[0]?.message ?? 'is not allowed';
      return `key ${describeValue(path.at(-1))} ${inner}`;
    }
    case 'invalid_format':
      if (issue.format === 'url') {
        return `${describeValue(input, path)} is not an http(s) URL — use e.g. http://127.0.0.1:11434/v1`;
      }
      return `${describeValue(input, path)} ${issue.message}`;
    case 'too_small':
      return bound(issue.origin, 'at least', issue.minimum, issue.inclusive, input, path);
    case 'too_big':
      return bound(issue.origin, 'at most', issue.maximum, issue.inclusive, input, path);
    case 'custom':
      return issue.message;
    default:
      return `${describeValue(input, path)}: ${issue.message}`;
  }
}

function bound(
  origin: string,
  word: 'at least' | 'at most',
  limit: number | bigint,
  inclusive: boolean | undefined,
  input: unknown,
  path: ConfigPath,
): string {
  const n = Number(limit);
  if (origin === 'array' || origin === 'set') {
    const min = inclusive === false ? (word === 'at least' ? n + 1 : n - 1) : n;
    return word === 'at least'
      ? `lists ${Array.isArray(input) ? input.length : 0} items — list at least ${min}`
      : `lists ${Array.isArray(input) ? input.length : '?'} items — list at most ${min}`;
  }
  if (origin === 'string') {
    return word === 'at least' && n <= 1
      ? 'is empty — write a value'
      : `${describeValue(input, path)} is too ${word === 'at least' ? 'short' : 'long'} — use ${word} ${n} characters`;
  }
  const op =
    word === 'at least' ? (inclusive === false ? '>' : '≥') : inclusive === false ? '<' : '≤';
  return `${describeValue(input, path)} is out of range — use a number ${op} ${n}`;
}

function unknownFieldMessage(key: string, known: readonly string[]): string {
  const close = known
    .map((k) => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) }))
    .filter(({ d }) => d <= Math.max(1, Math.floor(key.length / 4)))
    .sort((a, b) => a.d - b.d)[0];
  if (close) return `unknown field — did you mean "${close.k}"?`;
  if (known.length === 0) return 'unknown field — remove it';
  return `unknown field — remove it, or use one of ${known.join(', ')}`;
}

/** The field names the schema knows at `path` (an object's keys), for "did you mean". */
export function knownKeysAt(schema: z.ZodType, path: ConfigPath): string[] {
  let nodes: unknown[] = [schema];
  for (const segment of [...path, undefined]) {
    // Unwrap until objects, then step; `undefined` marks "arrived".
    const next: unknown[] = [];
    const arrived: string[] = [];
    const queue = [...nodes];
    while (queue.length > 0) {
      const def = defOf(queue.shift());
      if (!def) continue;
      switch (def.type) {
        case 'default':
        case 'prefault':
        case 'optional':
        case 'nullable':
        case 'readonly':
        case 'catch':
        case 'nonoptional':
          queue.push(def.innerType);
          break;
        case 'pipe':
          queue.push(def.in);
          break;
        case 'union':
          queue.push(...((def.options as unknown[]) ?? []));
          break;
        case 'object': {
          const shape = def.shape as Record<string, unknown>;
          if (segment === undefined) arrived.push(...Object.keys(shape));
          else if (typeof segment === 'string' && segment in shape) next.push(shape[segment]);
          break;
        }
        case 'array':
          if (typeof segment === 'number') next.push(def.element);
          break;
        case 'record':
          if (segment !== undefined) next.push(def.valueType);
          break;
        default:
          break;
      }
    }
    if (segment === undefined) return [...new Set(arrived)];
    nodes = next;
  }
  return [];
}

interface LooseDef {
  type: string;
  [key: string]: unknown;
}

function defOf(schema: unknown): LooseDef | undefined {
  const zod = (schema as { _zod?: { def?: LooseDef } } | undefined)?._zod;
  return zod?.def;
}

/** Edit distance where swapping two neighbours (`modle` → `model`) counts as one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}
