/**
 * Reading `gateway.yaml`: YAML (duplicate keys refused) → `defaults.policies` merged into each
 * server → {@link gatewayConfigSchema} → the checks a schema cannot make (unique ids, known
 * fallbacks, secrets present in the environment) → environment overrides.
 *
 * Every problem stops start-up with one {@link GatewayError} `INVALID_CONFIG` whose message
 * names the file, the field and the fix (DESIGN.md section 11, RELIABILITY.md S15).
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { GatewayError } from '../errors/gateway-error.js';
import { gatewayConfigSchema } from './gateway-config.js';
import type { GatewayConfig } from './gateway-config.js';
import {
  describeValue,
  formatConfigIssues,
  formatConfigPath,
  issuesFromZod,
} from './config-issues.js';
import type { ConfigIssue, ConfigPath } from './config-issues.js';

export { formatConfigIssues } from './config-issues.js';
export type { ConfigIssue } from './config-issues.js';

/** Environment variables, as `process.env`. */
export type ConfigEnv = Readonly<Record<string, string | undefined>>;

/**
 * Read, validate and return the gateway config at `path`.
 *
 * Environment overrides, applied after the file is validated:
 * - `PORT` overrides `gateway.port` (an integer 0-65535);
 * - `KEEL_GATEWAY_ISSUER` overrides `gateway.issuer` (the `iss` of every call token).
 *
 * Every environment variable the file names (`keyEnv`, `privateKeyEnv`, `tokenEnv`,
 * `adminKeyEnv`) must be set and non-empty, and every `privateKeyFile` readable; relative
 * `privateKeyFile` paths are taken from the config file's folder.
 *
 * @throws GatewayError `INVALID_CONFIG` naming the file, the field and the fix.
 *
 * @example
 * ```ts
 * const config = await loadGatewayConfig('gateway.yaml');
 * console.log(config.gateway.port); // 7070 unless the file or PORT says otherwise
 * ```
 */
export async function loadGatewayConfig(
  path: string,
  env: ConfigEnv = process.env,
): Promise<GatewayConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw invalid(path, [
      { path: '', message: `cannot read the file (${code}) — check the path given to --config` },
    ]);
  }
  const config = parseGatewayConfig(text, path, env);
  const issues: ConfigIssue[] = [];
  await Promise.all(
    config.signing.keys.map(async (key, i) => {
      if (key.privateKeyFile === undefined) return;
      try {
        await readFile(key.privateKeyFile);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
        issues.push({
          path: `signing.keys[${i}].privateKeyFile`,
          message: `cannot read ${JSON.stringify(key.privateKeyFile)} (${code}) — point it at a PKCS#8 PEM file`,
        });
      }
    }),
  );
  if (issues.length > 0) throw invalid(path, issues);
  return config;
}

/**
 * Validate config text. `file` names the file in messages and anchors relative
 * `privateKeyFile` paths. Same checks and overrides as {@link loadGatewayConfig}, minus
 * reading key files.
 *
 * @example
 * ```ts
 * const config = parseGatewayConfig('servers: [{ id: orders, urls: ["http://127.0.0.1:7101/mcp"] }]', 'gateway.yaml', {});
 * ```
 */
export function parseGatewayConfig(
  text: string,
  file: string,
  env: ConfigEnv = process.env,
): GatewayConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    uniqueKeys: true,
    merge: true,
    prettyErrors: true,
  });
  if (doc.errors.length > 0) {
    throw invalid(
      file,
      doc.errors.map((error) => {
        // Only a duplicate key sits exactly at a field; other syntax errors are named by line.
        const path = error.code === 'DUPLICATE_KEY' ? pathAtOffset(doc, error.pos[0]) : [];
        const line = error.linePos?.[0];
        const what = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        const fix =
          error.code === 'DUPLICATE_KEY'
            ? 'remove or rename one of them'
            : error.code === 'TAB_AS_INDENT'
              ? 'indent with spaces'
              : 'fix the YAML syntax';
        return {
          path: formatConfigPath(path),
          message: `${what} — ${fix}`,
          ...(line ? { line: line.line } : {}),
        };
      }),
    );
  }
  const lineOf = (path: ConfigPath): number | undefined => {
    const node = nodeAt(doc, path);
    const offset = node?.range?.[0];
    return offset === undefined ? undefined : lineCounter.linePos(offset).line;
  };

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch {
    // yaml refuses alias bombs (a few lines expanding to millions of nodes) here.
    throw invalid(file, [
      {
        path: '',
        message: 'too many YAML alias expansions — write the values out, or use fewer aliases',
      },
    ]);
  }
  if (raw === null || raw === undefined) raw = {};
  if (!isPlainObject(raw)) {
    throw invalid(file, [
      {
        path: '',
        message: `the file holds ${describeValue(raw)} — it must be a mapping (gateway:, servers:, ...)`,
      },
    ]);
  }

  // First as written, so every path points where the user wrote the value...
  const asWritten = gatewayConfigSchema.safeParse(raw, { reportInput: true });
  if (!asWritten.success)
    throw invalid(file, issuesFromZod(asWritten.error, gatewayConfigSchema, lineOf));

  // ...then with the defaults merged in, which is what the gateway runs with.
  const merged = withPolicyDefaults(raw);
  const parsed = gatewayConfigSchema.safeParse(merged, { reportInput: true });
  if (!parsed.success) {
    throw invalid(
      file,
      issuesFromZod(parsed.error, gatewayConfigSchema, lineOf).map((issue) => ({
        ...issue,
        message: `${issue.message} (after merging defaults.policies)`,
      })),
    );
  }
  const config = parsed.data;

  const issues = crossChecks(config, env, lineOf);
  if (issues.length > 0) throw invalid(file, issues);

  for (const key of config.signing.keys) {
    if (key.privateKeyFile !== undefined && !isAbsolute(key.privateKeyFile)) {
      key.privateKeyFile = resolve(dirname(file), key.privateKeyFile);
    }
  }
  applyEnvOverrides(config, env, file);
  return config;
}

/**
 * `defaults` deep-merged under `overrides`: nested mappings merge, a field the server sets
 * wins, lists (e.g. `rateLimits`) are replaced whole. Values that are not mappings are left
 * for validation to report.
 *
 * @example
 * ```ts
 * mergePolicyDefaults({ retry: { maxAttempts: 5 } }, { retry: { baseDelayMs: 50 } });
 * // { retry: { maxAttempts: 5, baseDelayMs: 50 } }
 * ```
 */
export function mergePolicyDefaults(defaults: unknown, overrides: unknown): unknown {
  if (overrides === undefined) return structuredClone(defaults);
  if (!isPlainObject(defaults) || !isPlainObject(overrides)) return overrides;
  const out: Record<string, unknown> = { ...structuredClone(defaults) };
  for (const [key, value] of Object.entries(overrides)) {
    out[key] = key in out ? mergePolicyDefaults(out[key], value) : value;
  }
  return out;
}

function withPolicyDefaults(raw: Record<string, unknown>): Record<string, unknown> {
  const defaults = isPlainObject(raw.defaults) ? raw.defaults.policies : undefined;
  if (!isPlainObject(defaults) || !Array.isArray(raw.servers)) return raw;
  return {
    ...raw,
    servers: raw.servers.map((server: unknown) =>
      isPlainObject(server)
        ? { ...server, policies: mergePolicyDefaults(defaults, server.policies) }
        : server,
    ),
  };
}

function crossChecks(
  config: GatewayConfig,
  env: ConfigEnv,
  lineOf: (path: ConfigPath) => number | undefined,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (path: ConfigPath, message: string) => {
    const line = lineOf(path);
    issues.push({ path: formatConfigPath(path), message, ...(line === undefined ? {} : { line }) });
  };

  const serverIds = new Map<string, number>();
  config.servers.forEach((server, i) => {
    const first = serverIds.get(server.id);
    if (first !== undefined) {
      add(
        ['servers', i, 'id'],
        `"${server.id}" is also the id of servers[${first}] — give each server its own id`,
      );
    } else serverIds.set(server.id, i);
    const urls = new Map<string, number>();
    server.urls.forEach((url, j) => {
      const seen = urls.get(url);
      if (seen !== undefined) {
        add(
          ['servers', i, 'urls', j],
          `${JSON.stringify(url)} is listed twice (urls[${seen}]) — remove one`,
        );
      } else urls.set(url, j);
    });
  });
  const checkFallbacks = (fallbacks: readonly string[], owner: string, path: ConfigPath) => {
    fallbacks.forEach((id, j) => {
      if (id === owner) {
        add([...path, j], `"${id}" is this server itself — a fallback must be another server`);
      } else if (!serverIds.has(id)) {
        add(
          [...path, j],
          `"${id}" is not a configured server — use one of the ids under servers (${[...serverIds.keys()].join(', ') || 'none'})`,
        );
      }
    });
  };
  config.servers.forEach((server, i) => {
    checkFallbacks(server.fallbacks, server.id, ['servers', i, 'fallbacks']);
    for (const [tool, override] of Object.entries(server.tools)) {
      if (override.fallbacks)
        checkFallbacks(override.fallbacks, server.id, ['servers', i, 'tools', tool, 'fallbacks']);
    }
    if (server.auth.mode === 'bearer') {
      checkEnv(
        env,
        server.auth.tokenEnv,
        ['servers', i, 'auth', 'tokenEnv'],
        'the bearer token for this server',
        add,
      );
    }
  });

  const principalIds = new Map<string, number>();
  const keyHashes = new Map<string, number>();
  config.auth.principals.forEach((principal, i) => {
    const first = principalIds.get(principal.id);
    if (first !== undefined) {
      add(
        ['auth', 'principals', i, 'id'],
        `"${principal.id}" is also the id of auth.principals[${first}] — give each principal its own id`,
      );
    } else principalIds.set(principal.id, i);
    if (principal.keySha256 !== undefined) {
      const same = keyHashes.get(principal.keySha256);
      if (same !== undefined) {
        add(
          ['auth', 'principals', i, 'keySha256'],
          `the same key as auth.principals[${same}] — give each principal its own key`,
        );
      } else keyHashes.set(principal.keySha256, i);
    }
    if (principal.keyEnv !== undefined) {
      checkEnv(env, principal.keyEnv, ['auth', 'principals', i, 'keyEnv'], 'the API key', add);
    }
  });
  if (config.auth.adminKeyEnv !== undefined) {
    checkEnv(env, config.auth.adminKeyEnv, ['auth', 'adminKeyEnv'], 'the admin API key', add);
  }

  const kids = new Map<string, number>();
  config.signing.keys.forEach((key, i) => {
    const first = kids.get(key.kid);
    if (first !== undefined) {
      add(
        ['signing', 'keys', i, 'kid'],
        `"${key.kid}" is also the kid of signing.keys[${first}] — give each key its own kid`,
      );
    } else kids.set(key.kid, i);
    if (key.privateKeyEnv !== undefined) {
      checkEnv(
        env,
        key.privateKeyEnv,
        ['signing', 'keys', i, 'privateKeyEnv'],
        'the PKCS#8 PEM private key',
        add,
      );
    }
  });
  if (config.signing.keys.length > 0 && config.signing.keys.every((k) => k.publishOnly)) {
    add(
      ['signing', 'keys'],
      'every key is publishOnly, so none can sign — set publishOnly: false on the new key',
    );
  }
  return issues;
}

function checkEnv(
  env: ConfigEnv,
  name: string,
  path: ConfigPath,
  what: string,
  add: (path: ConfigPath, message: string) => void,
): void {
  if (!env[name]) add(path, `environment variable ${name} is not set — set ${name} to ${what}`);
}

function applyEnvOverrides(config: GatewayConfig, env: ConfigEnv, file: string): void {
  const issues: ConfigIssue[] = [];
  const port = env.PORT;
  if (port !== undefined && port !== '') {
    const n = /^\d{1,5}$/.test(port.trim()) ? Number(port.trim()) : NaN;
    if (!Number.isInteger(n) || n > 65_535) {
      issues.push({
        path: 'gateway.port (from environment variable PORT)',
        message: `${describeValue(port)} is not a port — set PORT to an integer 0-65535`,
      });
    } else config.gateway.port = n;
  }
  const issuer = env.KEEL_GATEWAY_ISSUER;
  if (issuer !== undefined && issuer !== '') {
    if (issuer.trim() !== issuer || !/^[\x21-\x7e]+$/.test(issuer)) {
      issues.push({
        path: 'gateway.issuer (from environment variable KEEL_GATEWAY_ISSUER)',
        message: `${describeValue(issuer)} is not a valid issuer — use printable ASCII without spaces`,
      });
    } else config.gateway.issuer = issuer;
  }
  if (issues.length > 0) throw invalid(file, issues);
}

function invalid(file: string, issues: ConfigIssue[]): GatewayError {
  return new GatewayError('INVALID_CONFIG', formatConfigIssues(file, issues), {
    details: { file, issues },
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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
