/**
 * The aggregated tool catalog: every server's `tools/list`, exposed under DESIGN.md section 2
 * names, each definition hashed and checked against its approved hash (S14).
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { canonicalJson } from '@keel/tool-sdk';
import type { ServerConfig } from '../config/gateway-config.js';
import { buildExposedNames } from '../naming/exposed-names.js';
import type { NamingMode } from '../naming/exposed-names.js';
import type { ApprovalStore } from './approval-store.js';

/** A tool definition as an upstream lists it. */
export interface UpstreamTool {
  name: string;
  title?: string;
  description?: string;
  inputSchema: Record<string, unknown>;
  outputSchema?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
  _meta?: Record<string, unknown>;
  [key: string]: unknown;
}

/** One tool of the catalog. */
export interface CatalogEntry {
  /** The name callers see and call. */
  exposed: string;
  serverId: string;
  /** The upstream's own name. */
  tool: string;
  /** The definition as served (name replaced, original name in `_meta`). */
  definition: UpstreamTool;
  hash: string;
}

/** A changed definition waiting for an admin. */
export interface HeldTool {
  exposed: string;
  serverId: string;
  tool: string;
  oldHash?: string;
  newHash: string;
}

/** Options of {@link createToolCatalog}. */
export interface ToolCatalogOptions {
  approvals: ApprovalStore;
  namingMode: NamingMode;
  /** Default change policy (a server's `onToolChange` wins). */
  onToolChange: 'accept' | 'hold';
  logger: Logger;
  /** Called whenever what callers see changes. */
  onChange?: () => void;
}

/** The catalog. */
export interface ToolCatalog {
  /** Take a server's fresh `tools/list`. */
  update(server: ServerConfig, tools: readonly UpstreamTool[]): Promise<void>;
  /** Drop a deregistered server's tools. */
  remove(serverId: string): void;
  /** Active tools, sorted by exposed name. */
  entries(): readonly CatalogEntry[];
  resolve(exposed: string): CatalogEntry | undefined;
  /** Tools of one server by upstream name (fallback lookup). */
  find(serverId: string, tool: string): CatalogEntry | undefined;
  held(): HeldTool[];
  /** Approve a held tool's new definition; false when nothing is held under that name. */
  approve(exposed: string): Promise<boolean>;
  /** Bumped on every visible change. */
  readonly version: number;
}

interface ServerTools {
  tools: Map<
    string,
    { definition: UpstreamTool; hash: string; approved: boolean; approvedHash: string }
  >;
}

/** The hash a definition is approved under. */
export function definitionHash(tool: UpstreamTool): string {
  return createHash('sha256').update(canonicalJson(tool)).digest('hex');
}

/** Create an empty catalog. */
export function createToolCatalog(options: ToolCatalogOptions): ToolCatalog {
  const servers = new Map<string, ServerTools>();
  let exposedIndex = new Map<string, CatalogEntry>();
  let byServerTool = new Map<string, CatalogEntry>();
  let sorted: CatalogEntry[] = [];
  let heldNames = new Map<string, HeldTool>();
  let version = 0;

  function rebuild() {
    const all: Array<{ serverId: string; tool: string }> = [];
    for (const [serverId, entry] of servers)
      for (const tool of entry.tools.keys()) all.push({ serverId, tool });
    const names = buildExposedNames(all, options.namingMode, servers.size);
    const nextIndex = new Map<string, CatalogEntry>();
    const nextByServerTool = new Map<string, CatalogEntry>();
    const nextHeld = new Map<string, HeldTool>();
    for (const [exposed, ref] of names) {
      const state = servers.get(ref.serverId)!.tools.get(ref.tool)!;
      if (!state.approved) {
        nextHeld.set(exposed, {
          exposed,
          serverId: ref.serverId,
          tool: ref.tool,
          oldHash: state.approvedHash,
          newHash: state.hash,
        });
        continue;
      }
      const entry: CatalogEntry = {
        exposed,
        serverId: ref.serverId,
        tool: ref.tool,
        hash: state.hash,
        definition: {
          ...state.definition,
          name: exposed,
          _meta: {
            ...state.definition._meta,
            'dev.keel/server': ref.serverId,
            'dev.keel/originalName': ref.tool,
          },
        },
      };
      nextIndex.set(exposed, entry);
      nextByServerTool.set(`${ref.serverId}/${ref.tool}`, entry);
    }
    const nextSorted = [...nextIndex.values()].sort((a, b) => (a.exposed < b.exposed ? -1 : 1));
    const changed =
      nextSorted.length !== sorted.length ||
      nextSorted.some((e, i) => e.exposed !== sorted[i]!.exposed || e.hash !== sorted[i]!.hash);
    exposedIndex = nextIndex;
    byServerTool = nextByServerTool;
    sorted = nextSorted;
    heldNames = nextHeld;
    if (changed) {
      version++;
      options.onChange?.();
    }
  }

  async function update(server: ServerConfig, tools: readonly UpstreamTool[]): Promise<void> {
    const policy = server.onToolChange ?? options.onToolChange;
    const next: ServerTools = { tools: new Map() };
    for (const definition of tools) {
      if (typeof definition.name !== 'string' || definition.name === '') continue;
      const hash = definitionHash(definition);
      const key = `${server.id}/${definition.name}`;
      let approvedHash = await options.approvals.get(key);
      if (approvedHash === undefined) {
        await options.approvals.set(key, hash, { onlyIfAbsent: true });
        approvedHash = (await options.approvals.get(key)) ?? hash;
        if (approvedHash === hash) audit('info', 'tool-added', server.id, definition.name, hash);
      }
      let approved = approvedHash === hash;
      if (!approved && policy === 'accept') {
        await options.approvals.set(key, hash);
        audit('warn', 'tool-changed', server.id, definition.name, hash, approvedHash, 'accepted');
        approved = true;
      } else if (!approved) {
        const before = servers.get(server.id)?.tools.get(definition.name);
        // One audit line per new definition, not one per refresh.
        if (before?.hash !== hash)
          audit('warn', 'tool-changed', server.id, definition.name, hash, approvedHash, 'held');
      }
      next.tools.set(definition.name, { definition, hash, approved, approvedHash });
    }
    servers.set(server.id, next);
    rebuild();
  }

  function audit(
    level: 'info' | 'warn',
    event: string,
    serverId: string,
    tool: string,
    newHash: string,
    oldHash?: string,
    action?: string,
  ) {
    options.logger[level](
      { audit: event, server: serverId, tool, newHash, ...(oldHash ? { oldHash } : {}), action },
      `audit: ${event} ${serverId}/${tool}${action ? ` (${action})` : ''}`,
    );
  }

  return {
    update,
    remove(serverId) {
      if (servers.delete(serverId)) rebuild();
    },
    entries: () => sorted,
    resolve: (exposed) => exposedIndex.get(exposed),
    find: (serverId, tool) => byServerTool.get(`${serverId}/${tool}`),
    held: () => [...heldNames.values()],
    async approve(exposed) {
      const held = heldNames.get(exposed);
      if (!held) return false;
      await options.approvals.set(`${held.serverId}/${held.tool}`, held.newHash);
      const state = servers.get(held.serverId)?.tools.get(held.tool);
      if (state && state.hash === held.newHash) state.approved = true;
      audit('warn', 'tool-approved', held.serverId, held.tool, held.newHash);
      rebuild();
      return true;
    },
    get version() {
      return version;
    },
  };
}
