/**
 * The names the gateway exposes for its servers' tools (DESIGN.md section 2):
 * `<serverId>__<tool>`, at most 64 characters of `[A-Za-z0-9_-]`, legal for MCP, Anthropic and
 * OpenAI alike.
 */
import { createHash } from 'node:crypto';
import { EXPOSED_NAME_MAX_LENGTH, NAMESPACE_SEPARATOR } from '@keel/tool-sdk/contract';

/**
 * `always` (default): every name is prefixed; `auto`: no prefix while only one server is
 * registered; `never`: no prefix (collisions get a hash suffix).
 */
export type NamingMode = 'always' | 'auto' | 'never';

/** A tool of a logical server, by the upstream's own name. */
export interface ToolRef {
  serverId: string;
  tool: string;
}

const LEGAL = /^[A-Za-z0-9_-]+$/;
const ILLEGAL_CHAR = /[^A-Za-z0-9_-]/u;
const HASH_HEX = 6;

/**
 * Exposed name → tool, with the reverse lookup. A `Map`, so it iterates in exposed-name order.
 */
export class ExposedNames extends Map<string, ToolRef> {
  readonly #byTool = new Map<string, string>();

  /** @internal Built by {@link buildExposedNames}. */
  constructor(entries: Iterable<readonly [string, ToolRef]> = []) {
    super();
    for (const [exposed, ref] of entries) this.set(exposed, ref);
  }

  override set(exposed: string, ref: ToolRef): this {
    this.delete(exposed);
    super.set(exposed, ref);
    this.#byTool.set(refKey(ref.serverId, ref.tool), exposed);
    return this;
  }

  override delete(exposed: string): boolean {
    const ref = this.get(exposed);
    if (ref) this.#byTool.delete(refKey(ref.serverId, ref.tool));
    return super.delete(exposed);
  }

  override clear(): void {
    this.#byTool.clear();
    super.clear();
  }

  /** The exposed name of a server's tool, or `undefined` when it is not listed. */
  exposedNameOf(serverId: string, tool: string): string | undefined {
    return this.#byTool.get(refKey(serverId, tool));
  }
}

function refKey(serverId: string, tool: string): string {
  return `${serverId}\u0000${tool}`;
}

/**
 * Name every tool. Deterministic: the same set of tools gives the same names whatever the
 * input order.
 *
 * Rules, in order:
 * 1. The prefix `<serverId>__` is used in `always` mode, in `auto` mode when `serverCount`
 *    is not 1, never in `never` mode.
 * 2. A name that is already legal (`[A-Za-z0-9_-]`, ≤ 64) passes through unchanged.
 * 3. Otherwise each other character (Unicode code point) becomes `_`.
 * 4. A name still too long, or wanted by more than one tool, is cut and suffixed
 *    `_<first 6 hex of sha256(original)>`, where *original* is `<serverId>__<tool>` with the
 *    upstream's own, unsanitised name (so two servers' same-named tools differ). A name that
 *    passed through unchanged keeps it against a sanitised name that collides with it; two
 *    unchanged names that collide (only possible without a prefix) are both suffixed.
 * 5. Should a suffixed name still collide (a 24-bit hash clash), the suffix grows by two hex
 *    digits until it is unique.
 *
 * @example
 * ```ts
 * const names = buildExposedNames(
 *   [{ serverId: 'orders', tool: 'refund_order' }, { serverId: 'everything', tool: 'get-sum' }],
 *   'always',
 *   2,
 * );
 * names.get('orders__refund_order'); // { serverId: 'orders', tool: 'refund_order' }
 * names.exposedNameOf('everything', 'get-sum'); // 'everything__get-sum'
 * ```
 */
export function buildExposedNames(
  entries: readonly ToolRef[],
  mode: NamingMode,
  serverCount: number,
): ExposedNames {
  const prefixed = mode === 'always' || (mode === 'auto' && serverCount !== 1);
  const refs = uniqueSorted(entries);

  interface Candidate {
    ref: ToolRef;
    prefix: string;
    /** The tool part after sanitising. */
    tool: string;
    /** The name as the upstream gave it (no character replaced). */
    exact: boolean;
    fits: boolean;
  }
  const candidates = refs.map((ref): Candidate => {
    const prefix = prefixed ? `${ref.serverId}${NAMESPACE_SEPARATOR}` : '';
    const exact = LEGAL.test(ref.tool);
    const tool = exact ? ref.tool : sanitize(ref.tool);
    return {
      ref,
      prefix,
      tool,
      exact,
      fits: tool !== '' && prefix.length + tool.length <= EXPOSED_NAME_MAX_LENGTH,
    };
  });

  const wanted = new Map<string, Candidate[]>();
  for (const candidate of candidates) {
    if (!candidate.fits) continue;
    const name = candidate.prefix + candidate.tool;
    const list = wanted.get(name);
    if (list) list.push(candidate);
    else wanted.set(name, [candidate]);
  }

  const taken = new Map<string, ToolRef>();
  const suffixed: Candidate[] = [];
  for (const candidate of candidates) {
    if (!candidate.fits) {
      suffixed.push(candidate);
      continue;
    }
    const name = candidate.prefix + candidate.tool;
    const rivals = wanted.get(name)!;
    const exactRivals = rivals.filter((c) => c.exact);
    const keeps = rivals.length === 1 || (candidate.exact && exactRivals.length === 1);
    if (keeps) taken.set(name, candidate.ref);
    else suffixed.push(candidate);
  }

  // In sorted order, so clashes of suffixed names resolve the same way every time.
  for (const candidate of suffixed) {
    const hash = createHash('sha256')
      .update(`${candidate.ref.serverId}${NAMESPACE_SEPARATOR}${candidate.ref.tool}`)
      .digest('hex');
    for (let digits = HASH_HEX; ; digits += 2) {
      const suffix = `_${hash.slice(0, digits)}`;
      const room = EXPOSED_NAME_MAX_LENGTH - candidate.prefix.length - suffix.length;
      const name = candidate.prefix + cut(candidate.tool, room) + suffix;
      if (!taken.has(name)) {
        taken.set(name, candidate.ref);
        break;
      }
    }
  }

  return new ExposedNames([...taken].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function sanitize(tool: string): string {
  let out = '';
  for (const char of tool) out += ILLEGAL_CHAR.test(char) ? '_' : char;
  return out;
}

function cut(tool: string, room: number): string {
  return tool.slice(0, Math.max(0, room));
}

function uniqueSorted(entries: readonly ToolRef[]): ToolRef[] {
  const seen = new Map<string, ToolRef>();
  for (const { serverId, tool } of entries) seen.set(refKey(serverId, tool), { serverId, tool });
  return [...seen].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, ref]) => ref);
}
