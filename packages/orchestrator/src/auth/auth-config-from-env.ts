/**
 * The orchestrator's inbound auth from environment variables (DESIGN.md section 6):
 *
 * | variable | meaning |
 * |---|---|
 * | `KEEL_AUTH_JWKS_URL` | the identity provider's JWKS (JWT users) |
 * | `KEEL_AUTH_PUBLIC_KEY_FILE` | or a PEM (SPKI) public key file instead of a JWKS |
 * | `KEEL_AUTH_ISSUER`, `KEEL_AUTH_AUDIENCE` | exact `iss` and `aud` (audience: comma list) |
 * | `KEEL_AUTH_TENANT_CLAIM` | the claim holding the tenant; default `tnt` |
 * | `KEEL_AUTH_ALGORITHMS` | comma list; default `RS256,ES256,EdDSA` |
 * | `KEEL_API_KEYS_FILE` | YAML or JSON list of `{id, hash or key, tenant, user, service}` |
 * | `KEEL_AUTH=none` | development mode: user from `X-Keel-User` or `dev-user`, tenant `dev` |
 *
 * Every problem is thrown as one message naming the variable and the fix.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { DEFAULT_JWT_ALGORITHMS } from './create-authenticator.js';
import type { ApiKeyConfig, AuthConfig, JwtAuthConfig } from './create-authenticator.js';

/** Options of {@link authConfigFromEnv}. */
export interface AuthConfigFromEnvOptions {
  /** Reads `KEEL_API_KEYS_FILE` / `KEEL_AUTH_PUBLIC_KEY_FILE`; default `fs.readFileSync`. */
  readonly readFile?: (path: string) => string;
}

/** The development principal `KEEL_AUTH=none` gives. */
export const DEV_PRINCIPAL = Object.freeze({ user: 'dev-user', tenant: 'dev' });

const identity = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^\p{C}]+$/u, 'must not contain control characters');

const keyEntry = z
  .object({
    id: identity,
    hash: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be the SHA-256 hex of the key (64 hex characters)')
      .optional(),
    key: z.string().min(16, 'must be at least 16 characters').optional(),
    tenant: identity.optional(),
    user: identity.optional(),
    service: z.boolean().default(false),
  })
  .strict()
  .refine((entry) => (entry.hash === undefined) !== (entry.key === undefined), {
    message: 'give exactly one of hash or key',
  })
  .refine((entry) => entry.service || entry.tenant !== undefined, {
    message: 'a non-service key needs a tenant (or set service: true)',
  });

const keysFile = z.array(keyEntry);

/**
 * Build the auth config from the environment.
 *
 * @throws Error naming the variable and the fix when something is missing or invalid.
 *
 * @example
 * ```ts
 * const auth = createAuthenticator(authConfigFromEnv(process.env), { logger });
 * ```
 */
export function authConfigFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  options: AuthConfigFromEnvOptions = {},
): AuthConfig {
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const get = (name: string) => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };

  const mode = get('KEEL_AUTH');
  if (mode !== undefined && mode !== 'none') {
    throw new Error(
      `KEEL_AUTH="${mode}" is not understood — unset it, or set KEEL_AUTH=none for local development without authentication`,
    );
  }

  const jwt = jwtFromEnv(get, readFile);
  const apiKeys = apiKeysFromEnv(get('KEEL_API_KEYS_FILE'), readFile);
  const config: { jwt?: JwtAuthConfig; apiKeys?: ApiKeyConfig[]; dev?: AuthConfig['dev'] } = {};
  if (jwt) config.jwt = jwt;
  if (apiKeys) config.apiKeys = apiKeys;
  if (mode === 'none') config.dev = { ...DEV_PRINCIPAL };

  if (!config.jwt && !config.apiKeys && !config.dev) {
    throw new Error(
      'No authentication configured — set KEEL_AUTH_JWKS_URL with KEEL_AUTH_ISSUER and KEEL_AUTH_AUDIENCE (identity provider JWTs), and/or KEEL_API_KEYS_FILE (API keys); or KEEL_AUTH=none for local development only',
    );
  }
  return config;
}

function jwtFromEnv(
  get: (name: string) => string | undefined,
  readFile: (path: string) => string,
): JwtAuthConfig | undefined {
  const jwksUrl = get('KEEL_AUTH_JWKS_URL');
  const keyFile = get('KEEL_AUTH_PUBLIC_KEY_FILE');
  const issuer = get('KEEL_AUTH_ISSUER');
  const audience = get('KEEL_AUTH_AUDIENCE');
  const tenantClaim = get('KEEL_AUTH_TENANT_CLAIM');
  const algorithms = get('KEEL_AUTH_ALGORITHMS');

  if (!jwksUrl && !keyFile) {
    const stray = (
      [
        ['KEEL_AUTH_ISSUER', issuer],
        ['KEEL_AUTH_AUDIENCE', audience],
        ['KEEL_AUTH_TENANT_CLAIM', tenantClaim],
        ['KEEL_AUTH_ALGORITHMS', algorithms],
      ] as const
    ).find(([, value]) => value !== undefined);
    if (stray) {
      throw new Error(
        `${stray[0]} is set but KEEL_AUTH_JWKS_URL is not — set KEEL_AUTH_JWKS_URL to the identity provider's JWKS URL (or KEEL_AUTH_PUBLIC_KEY_FILE), or unset ${stray[0]}`,
      );
    }
    return undefined;
  }
  if (jwksUrl && keyFile) {
    throw new Error(
      'KEEL_AUTH_JWKS_URL and KEEL_AUTH_PUBLIC_KEY_FILE are both set — keep only one of them',
    );
  }
  if (jwksUrl) {
    let url: URL | undefined;
    try {
      url = new URL(jwksUrl);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      throw new Error(
        `KEEL_AUTH_JWKS_URL must be an http(s) URL — e.g. https://idp.example.com/.well-known/jwks.json`,
      );
    }
  }
  if (!issuer) {
    throw new Error(
      'KEEL_AUTH_ISSUER is not set — set it to the exact "iss" of your identity provider\'s tokens',
    );
  }
  if (!audience) {
    throw new Error(
      'KEEL_AUTH_AUDIENCE is not set — set it to the "aud" your identity provider puts in tokens for this orchestrator',
    );
  }
  const audiences = audience
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  if (tenantClaim !== undefined && !/^[A-Za-z0-9_:./-]{1,128}$/.test(tenantClaim)) {
    throw new Error(
      'KEEL_AUTH_TENANT_CLAIM must be a claim name (letters, digits, _ : . / -) — e.g. tnt or org_id',
    );
  }
  let algs = [...DEFAULT_JWT_ALGORITHMS];
  if (algorithms !== undefined) {
    algs = algorithms
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean);
    const allowed = new Set([
      'RS256',
      'RS384',
      'RS512',
      'PS256',
      'PS384',
      'PS512',
      'ES256',
      'ES384',
      'ES512',
      'EdDSA',
      'Ed25519',
    ]);
    const bad = algs.find((a) => !allowed.has(a));
    if (algs.length === 0 || bad !== undefined) {
      throw new Error(
        `KEEL_AUTH_ALGORITHMS${bad ? ` has "${bad}", which` : ''} is not a list of asymmetric JWS algorithms — e.g. RS256,ES256,EdDSA`,
      );
    }
  }

  let publicKeyPem: string | undefined;
  if (keyFile) {
    try {
      publicKeyPem = readFile(keyFile);
    } catch {
      throw new Error(
        `KEEL_AUTH_PUBLIC_KEY_FILE: cannot read ${keyFile} — point it at a readable PEM public key`,
      );
    }
    if (!publicKeyPem.includes('-----BEGIN PUBLIC KEY-----')) {
      throw new Error(
        `KEEL_AUTH_PUBLIC_KEY_FILE: ${keyFile} is not a PEM public key — it must contain "-----BEGIN PUBLIC KEY-----" (SPKI)`,
      );
    }
  }

  return {
    ...(jwksUrl ? { jwksUrl } : {}),
    ...(publicKeyPem ? { publicKeyPem } : {}),
    issuer,
    audience: audiences.length === 1 ? audiences[0]! : audiences,
    algorithms: algs,
    ...(tenantClaim ? { tenantClaim } : {}),
  };
}

function apiKeysFromEnv(
  file: string | undefined,
  readFile: (path: string) => string,
): ApiKeyConfig[] | undefined {
  if (file === undefined) return undefined;
  const where = `KEEL_API_KEYS_FILE (${file})`;
  let text: string;
  try {
    text = readFile(file);
  } catch {
    throw new Error(`${where}: cannot be read — point KEEL_API_KEYS_FILE at a readable file`);
  }
  // JSON is YAML, so one parser reads both; duplicate keys and alias bombs are refused.
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const line = first.linePos?.[0]?.line;
    throw new Error(
      `${where}${line ? `:${line}` : ''}: ${first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')} — fix the YAML/JSON syntax`,
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch {
    throw new Error(`${where}: too many YAML alias expansions — write the entries out`);
  }
  const parsed = keysFile.safeParse(raw ?? []);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('');
    // Never echo the input: an entry may hold a key in clear.
    throw new Error(
      `${where}: ${path ? `entry${path}` : 'the file'}: ${issue.message} — the file must be a list of { id, hash (sha256 hex) or key, tenant, user, service }`,
    );
  }
  const ids = new Set<string>();
  return parsed.data.map((entry, index) => {
    if (ids.has(entry.id)) {
      throw new Error(
        `${where}: entry[${index}].id "${entry.id}" is used twice — give each key its own id`,
      );
    }
    ids.add(entry.id);
    const hash =
      entry.hash !== undefined
        ? entry.hash.toLowerCase()
        : createHash('sha256').update(entry.key!).digest('hex');
    return {
      id: entry.id,
      hash,
      service: entry.service,
      ...(entry.tenant !== undefined ? { tenant: entry.tenant } : {}),
      ...(entry.user !== undefined ? { user: entry.user } : {}),
    };
  });
}
