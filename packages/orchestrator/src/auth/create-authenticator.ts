/**
 * Who is calling the orchestrator (DESIGN.md section 6): a user with a JWT from the
 * application's identity provider, an API key that stands for one user, or an application
 * backend's *service* key naming the user with `X-Keel-User` / `X-Keel-Tenant`. Development
 * mode (no credentials) exists only when the config asks for it, and says so loudly.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createRemoteJWKSet, customFetch, errors as joseErrors, importSPKI, jwtVerify } from 'jose';
import type { CryptoKey, JWTPayload, JWTVerifyGetKey } from 'jose';
import { AuthError } from './auth-error.js';
import type { Authenticator, Principal } from './principal.js';

/** Verification of the identity provider's JWTs. */
export interface JwtAuthConfig {
  /** The IdP's JWKS (fetched on first use, cached, refetched on an unknown `kid`). */
  readonly jwksUrl?: string;
  /** Or one static SPKI public key (PEM). */
  readonly publicKeyPem?: string;
  /** Exact `iss`. */
  readonly issuer: string;
  /** Exact `aud` (one of them). */
  readonly audience: string | readonly string[];
  /** Accepted `alg` values; default RS256, ES256, EdDSA. `none` is never accepted. */
  readonly algorithms?: readonly string[];
  /** The claim holding the tenant; default `tnt`. */
  readonly tenantClaim?: string;
  /** Allowed clock skew for `exp` / `nbf` / `iat`, seconds; default 5. */
  readonly clockToleranceS?: number;
}

/** One API key, stored as the SHA-256 hex of the key. */
export interface ApiKeyConfig {
  /** Shown in logs and on the principal (never the key). */
  readonly id: string;
  /** Lower-case SHA-256 hex of the key. */
  readonly hash: string;
  /** Tenant of the key's user; for a service key, the default when `X-Keel-Tenant` is absent. */
  readonly tenant?: string;
  /** The user a non-service key stands for; default the key's id. */
  readonly user?: string;
  /** Service keys (application backends) name the user with `X-Keel-User`. */
  readonly service: boolean;
}

/** What {@link createAuthenticator} accepts. At least one of the three must be set. */
export interface AuthConfig {
  readonly jwt?: JwtAuthConfig;
  readonly apiKeys?: readonly ApiKeyConfig[];
  /** Development mode: requests without credentials are this user (or `X-Keel-User`). */
  readonly dev?: { readonly user: string; readonly tenant: string };
}

/** The part of a logger (pino's shape) the authenticator uses. */
export interface AuthLogger {
  warn(fields: object, message: string): void;
}

/** Injected parts of {@link createAuthenticator}. */
export interface AuthenticatorOptions {
  /** Receives the development-mode warning. The token or key is never logged. */
  readonly logger?: AuthLogger;
  /** Correlation ids of the errors; default random UUIDs. */
  readonly newCorrelationId?: () => string;
  /** The clock JWTs are checked against; default the system clock. */
  readonly now?: () => Date;
  /** Fetch used for the JWKS (tests, proxies); default global fetch. */
  readonly fetch?: typeof fetch;
}

/** Default accepted JWT algorithms. */
export const DEFAULT_JWT_ALGORITHMS: readonly string[] = ['RS256', 'ES256', 'EdDSA'];
/** Default tenant claim. */
export const DEFAULT_TENANT_CLAIM = 'tnt';
/** Header a service key names the user with. */
export const USER_HEADER = 'x-keel-user';
/** Header a service key names the tenant with. */
export const TENANT_HEADER = 'x-keel-tenant';
/** Alternative to `Authorization: Bearer` for API keys. */
export const API_KEY_HEADER = 'x-api-key';
/** Longest user or tenant accepted from a header or claim. */
export const MAX_IDENTITY_LENGTH = 128;

const MAX_CREDENTIAL_LENGTH = 8192;
const BEARER = /^Bearer[ ]+([\x21-\x7e]+)[ ]*$/i;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
// No control characters (C0, DEL, C1) and no unassigned/format/surrogate code points.
const PRINTABLE = /^[^\p{C}]+$/u;

type HeaderBag = Readonly<Record<string, string | string[] | undefined>>;

interface StoredKey {
  readonly digest: Buffer;
  readonly entry: ApiKeyConfig;
}

/** Thrown from the key resolver so a JWKS outage is told apart from a bad token. */
class KeySourceUnavailable extends Error {}

/**
 * Build the orchestrator's authenticator.
 *
 * - `Authorization: Bearer <jwt>` (three base64url segments, JWT configured): verified with
 *   jose against the JWKS or the static key, exact `iss` and `aud`, the configured algorithms
 *   only; `sub` is the user and the tenant claim the tenant (missing → 401).
 * - `Authorization: Bearer <key>` or `X-API-Key: <key>`: hashed with SHA-256 and compared in
 *   constant time with the stored hashes. A service key needs `X-Keel-User` and may set
 *   `X-Keel-Tenant` (default: the key's tenant). Every other caller sending either header gets
 *   403, so a misconfigured client is visible rather than silently acting as someone else.
 * - Development mode (`dev`): a request without credentials is `{ via: 'dev' }`, user from
 *   `X-Keel-User` or `dev.user`, tenant from `X-Keel-Tenant` or `dev.tenant`. Credentials that
 *   are presented are still checked when JWT or API keys are configured.
 *
 * @throws Error when the config is unusable (no method, bad hash, duplicate key id or hash).
 *
 * @example
 * ```ts
 * const auth = createAuthenticator(
 *   { jwt: { jwksUrl: 'https://idp.example/jwks.json', issuer: 'https://idp.example/', audience: 'keel' } },
 *   { logger },
 * );
 * const principal = await auth.authenticate(req.headers); // throws AuthError
 * ```
 */
export function createAuthenticator(
  config: AuthConfig,
  options: AuthenticatorOptions = {},
): Authenticator {
  const newCorrelationId = options.newCorrelationId ?? randomUUID;
  const fail = (code: 'UNAUTHENTICATED' | 'FORBIDDEN' | 'UNAVAILABLE', message: string) =>
    new AuthError(code, message, { correlationId: newCorrelationId() });

  if (!config.jwt && !config.apiKeys?.length && !config.dev) {
    throw new Error(
      'auth: no authentication configured — configure jwt, apiKeys, or (local development only) dev',
    );
  }
  const keys = storeKeys(config.apiKeys ?? []);
  const verifyJwt = config.jwt ? jwtVerifier(config.jwt, options) : undefined;
  const dev = config.dev;
  const devOnly = dev !== undefined && !config.jwt && keys.size === 0;
  if (dev) {
    validateIdentity(dev.user, 'dev.user');
    validateIdentity(dev.tenant, 'dev.tenant');
    options.logger?.warn(
      { user: dev.user, tenant: dev.tenant },
      'DEVELOPMENT MODE: authentication is off (KEEL_AUTH=none / dev); requests without ' +
        'credentials are accepted as any user they name in X-Keel-User. Never expose this ' +
        'orchestrator beyond your machine.',
    );
  }

  const identityHeaders = (headers: HeaderBag) => ({
    user: headerValue(headers, USER_HEADER, fail),
    tenant: headerValue(headers, TENANT_HEADER, fail),
  });

  const refuseIdentityHeaders = (headers: HeaderBag, who: string) => {
    if (
      firstHeader(headers, USER_HEADER) !== undefined ||
      firstHeader(headers, TENANT_HEADER) !== undefined
    ) {
      throw fail(
        'FORBIDDEN',
        `X-Keel-User / X-Keel-Tenant may only be sent with a service key; ${who} acts as itself — remove the headers or use a service key`,
      );
    }
  };

  return {
    async authenticate(headers) {
      const authorization = singleHeader(headers, 'authorization', fail);
      const apiKeyHeader = singleHeader(headers, API_KEY_HEADER, fail);

      if (authorization === undefined && apiKeyHeader === undefined) {
        if (dev) {
          const named = identityHeaders(headers);
          return Object.freeze({
            user: named.user ?? dev.user,
            tenant: named.tenant ?? dev.tenant,
            via: 'dev' as const,
          });
        }
        throw fail(
          'UNAUTHENTICATED',
          'Missing credentials: send Authorization: Bearer <token or API key>, or X-API-Key: <API key>',
        );
      }
      if (authorization !== undefined && apiKeyHeader !== undefined) {
        throw fail(
          'UNAUTHENTICATED',
          'Send credentials once: either Authorization or X-API-Key, not both',
        );
      }
      if (devOnly) {
        // Nothing to check credentials against; development mode ignores them.
        const named = identityHeaders(headers);
        return Object.freeze({
          user: named.user ?? dev.user,
          tenant: named.tenant ?? dev.tenant,
          via: 'dev' as const,
        });
      }

      let credential: string;
      if (authorization !== undefined) {
        const match =
          authorization.length <= MAX_CREDENTIAL_LENGTH + 16 ? BEARER.exec(authorization) : null;
        if (!match) {
          throw fail(
            'UNAUTHENTICATED',
            'Malformed Authorization header: send Authorization: Bearer <token or API key>',
          );
        }
        credential = match[1]!;
      } else {
        credential = apiKeyHeader!.trim();
        if (
          credential.length === 0 ||
          credential.length > MAX_CREDENTIAL_LENGTH ||
          !/^[\x21-\x7e]+$/.test(credential)
        ) {
          throw fail('UNAUTHENTICATED', 'Malformed X-API-Key header');
        }
      }

      const looksLikeJwt = JWT_SHAPE.test(credential);
      if (looksLikeJwt && verifyJwt && authorization !== undefined) {
        const claims = await verifyJwt(credential, fail);
        refuseIdentityHeaders(headers, 'a JWT user');
        return claims;
      }

      const digest = createHash('sha256').update(credential).digest();
      const found = keys.get(digest.toString('hex'));
      // The lookup is by hash, so its timing says nothing about the key; the compare is
      // constant-time all the same.
      if (!found || !timingSafeEqual(found.digest, digest)) {
        throw fail(
          'UNAUTHENTICATED',
          looksLikeJwt && !verifyJwt
            ? 'Invalid credentials: JWTs are not accepted (no identity provider is configured)'
            : 'Invalid credentials',
        );
      }
      const entry = found.entry;
      if (!entry.service) {
        refuseIdentityHeaders(headers, `API key "${entry.id}"`);
        return Object.freeze({
          user: entry.user ?? entry.id,
          tenant: entry.tenant!,
          via: 'api-key' as const,
          keyId: entry.id,
        });
      }
      const named = identityHeaders(headers);
      if (named.user === undefined) {
        throw fail(
          'UNAUTHENTICATED',
          `Service key "${entry.id}" must name the user: send X-Keel-User: <user id>`,
        );
      }
      const tenant = named.tenant ?? entry.tenant;
      if (tenant === undefined) {
        throw fail(
          'UNAUTHENTICATED',
          `Service key "${entry.id}" has no tenant: send X-Keel-Tenant: <tenant id>`,
        );
      }
      return Object.freeze({
        user: named.user,
        tenant,
        via: 'service-key' as const,
        keyId: entry.id,
      });
    },
  };
}

type Fail = (code: 'UNAUTHENTICATED' | 'FORBIDDEN' | 'UNAVAILABLE', message: string) => AuthError;

function storeKeys(entries: readonly ApiKeyConfig[]): Map<string, StoredKey> {
  const byHash = new Map<string, StoredKey>();
  const ids = new Set<string>();
  entries.forEach((entry, index) => {
    const where = `apiKeys[${index}] ("${entry.id}")`;
    if (typeof entry.id !== 'string' || entry.id.length === 0) {
      throw new Error(`auth: apiKeys[${index}].id must be a non-empty string`);
    }
    if (ids.has(entry.id))
      throw new Error(`auth: ${where}: duplicate id — give each key its own id`);
    ids.add(entry.id);
    const hash = entry.hash.toLowerCase();
    if (!SHA256_HEX.test(hash)) {
      throw new Error(
        `auth: ${where}.hash must be the SHA-256 hex of the key (64 hex characters) — e.g. printf %s "$KEY" | sha256sum`,
      );
    }
    if (byHash.has(hash)) {
      throw new Error(
        `auth: ${where}: the same key as "${byHash.get(hash)!.entry.id}" — give each key its own value`,
      );
    }
    if (entry.tenant !== undefined) validateIdentity(entry.tenant, `${where}.tenant`);
    if (entry.user !== undefined) validateIdentity(entry.user, `${where}.user`);
    if (!entry.service && entry.tenant === undefined) {
      throw new Error(
        `auth: ${where}: a non-service key needs a tenant — set tenant, or mark it service: true`,
      );
    }
    byHash.set(hash, { digest: Buffer.from(hash, 'hex'), entry: Object.freeze({ ...entry }) });
  });
  return byHash;
}

function validateIdentity(value: string, field: string): void {
  if (!isIdentity(value)) {
    throw new Error(
      `auth: ${field} must be 1-${MAX_IDENTITY_LENGTH} characters without control characters`,
    );
  }
}

function isIdentity(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= MAX_IDENTITY_LENGTH &&
    PRINTABLE.test(value)
  );
}

function firstHeader(headers: HeaderBag, name: string): string | string[] | undefined {
  const direct = headers[name];
  if (direct !== undefined) return direct;
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name && value !== undefined) return value;
  }
  return undefined;
}

function singleHeader(headers: HeaderBag, name: string, fail: Fail): string | undefined {
  const value = firstHeader(headers, name);
  if (Array.isArray(value)) {
    if (value.length === 0) return undefined;
    if (value.length > 1) throw fail('UNAUTHENTICATED', `Send the ${name} header only once`);
    return value[0];
  }
  return value;
}

/** An identity header's value, validated (1-128 characters, no control characters). */
function headerValue(headers: HeaderBag, name: string, fail: Fail): string | undefined {
  const value = singleHeader(headers, name, fail);
  if (value === undefined) return undefined;
  if (!isIdentity(value)) {
    // The value itself is not echoed: it came from the caller and may be anything.
    throw fail(
      'UNAUTHENTICATED',
      `${name} must be 1-${MAX_IDENTITY_LENGTH} characters without control characters`,
    );
  }
  return value;
}

function jwtVerifier(
  config: JwtAuthConfig,
  options: AuthenticatorOptions,
): (token: string, fail: Fail) => Promise<Principal> {
  if (!config.jwksUrl === !config.publicKeyPem) {
    throw new Error('auth: jwt needs exactly one of jwksUrl or publicKeyPem');
  }
  if (!config.issuer) throw new Error('auth: jwt.issuer is required');
  const audience = typeof config.audience === 'string' ? [config.audience] : [...config.audience];
  if (audience.length === 0 || audience.some((a) => !a)) {
    throw new Error('auth: jwt.audience is required');
  }
  const algorithms = [...(config.algorithms ?? DEFAULT_JWT_ALGORITHMS)];
  if (algorithms.length === 0 || algorithms.some((alg) => alg.toLowerCase() === 'none')) {
    throw new Error('auth: jwt.algorithms must list signing algorithms, never "none"');
  }
  const tenantClaim = config.tenantClaim ?? DEFAULT_TENANT_CLAIM;
  const clockTolerance = config.clockToleranceS ?? 5;

  let getKey: JWTVerifyGetKey;
  if (config.jwksUrl) {
    let url: URL;
    try {
      url = new URL(config.jwksUrl);
    } catch {
      throw new Error(`auth: jwt.jwksUrl is not a URL: ${config.jwksUrl}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new Error('auth: jwt.jwksUrl must be an http(s) URL');
    }
    // jose caches the set (10 min), refetches on an unknown kid at most every 30 s.
    const remote = createRemoteJWKSet(url, {
      ...(options.fetch ? { [customFetch]: options.fetch } : {}),
    });
    getKey = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (error) {
        if (
          error instanceof joseErrors.JWKSNoMatchingKey ||
          error instanceof joseErrors.JWKSMultipleMatchingKeys ||
          error instanceof joseErrors.JOSENotSupported ||
          error instanceof joseErrors.JOSEAlgNotAllowed
        ) {
          throw error;
        }
        throw new KeySourceUnavailable('JWKS unavailable', { cause: error });
      }
    };
  } else {
    const pem = config.publicKeyPem!;
    const imported = new Map<string, Promise<CryptoKey>>();
    getKey = async (header) => {
      const alg = header.alg;
      if (!algorithms.includes(alg)) throw new joseErrors.JOSEAlgNotAllowed('alg not allowed');
      let key = imported.get(alg);
      if (!key) {
        key = importSPKI(pem, alg);
        imported.set(alg, key);
      }
      return key.catch(() => {
        throw new joseErrors.JOSENotSupported('key does not fit the algorithm');
      });
    };
  }

  return async (token, fail) => {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        issuer: config.issuer,
        audience,
        algorithms,
        clockTolerance,
        ...(options.now ? { currentDate: options.now() } : {}),
      }));
    } catch (error) {
      throw fail(...describeJwtFailure(error));
    }
    const user = payload.sub;
    if (!isIdentity(user)) {
      throw fail(
        'UNAUTHENTICATED',
        `Token has no usable "sub" claim (1-${MAX_IDENTITY_LENGTH} characters)`,
      );
    }
    const tenant = payload[tenantClaim];
    if (tenant === undefined) {
      throw fail(
        'UNAUTHENTICATED',
        `Token has no "${tenantClaim}" claim: the identity provider must put the tenant in "${tenantClaim}" (or set the tenant claim name in the orchestrator config)`,
      );
    }
    if (!isIdentity(tenant)) {
      throw fail(
        'UNAUTHENTICATED',
        `Token claim "${tenantClaim}" must be a string of 1-${MAX_IDENTITY_LENGTH} characters`,
      );
    }
    return Object.freeze({ user, tenant, via: 'jwt' as const });
  };
}

function describeJwtFailure(error: unknown): ['UNAUTHENTICATED' | 'UNAVAILABLE', string] {
  if (error instanceof KeySourceUnavailable) {
    return [
      'UNAVAILABLE',
      "The identity provider's signing keys cannot be fetched; try again shortly",
    ];
  }
  if (error instanceof joseErrors.JWTExpired) return ['UNAUTHENTICATED', 'Token expired'];
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return ['UNAUTHENTICATED', `Token claim "${error.claim}" is not accepted (${error.reason})`];
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) {
    return ['UNAUTHENTICATED', 'Token signing algorithm is not accepted'];
  }
  if (error instanceof joseErrors.JWKSNoMatchingKey) {
    return ['UNAUTHENTICATED', 'Token signed with an unknown key'];
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
    return ['UNAUTHENTICATED', 'Token signature is invalid'];
  }
  return ['UNAUTHENTICATED', 'Token is malformed or not accepted'];
}
