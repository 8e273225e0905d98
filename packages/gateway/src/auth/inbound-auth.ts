/**
 * Who is calling the gateway's MCP endpoint (DESIGN.md sections 3 and 5): API keys of IDEs and
 * agents, service principals (the orchestrator), or — only when the config says so — nobody in
 * particular (development).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { META_KEYS } from '@keel/tool-sdk/contract';
import type { GatewayConfig } from '../config/gateway-config.js';
import { GatewayError } from '../errors/gateway-error.js';

/** An authenticated caller. */
export interface Principal {
  /** The configured id; `development` in development mode. */
  readonly id: string;
  /** `service` principals may pass end-user context; the others act as themselves. */
  readonly kind: 'apiKey' | 'service' | 'development';
  /** Whether it may list and call this exposed tool (its `tools` globs). */
  allows(exposedTool: string): boolean;
  /** Its own request limit on the endpoint. */
  readonly requestLimit?: { limit: number; windowMs: number };
}

/** Authenticates inbound requests. */
export interface InboundAuth {
  /**
   * The principal of a request's `Authorization: Bearer <key>`.
   *
   * @throws GatewayError `UNAUTHENTICATED` (HTTP 401) for missing, malformed or unknown keys.
   */
  authenticate(headers: Headers): Principal;
  /** Whether development mode (no credentials needed) is on. */
  readonly development: boolean;
}

/** Options of {@link createInboundAuth}. */
export interface InboundAuthOptions {
  /** `auth` of the gateway config. */
  config: GatewayConfig['auth'];
  /** Where `keyEnv` keys are read; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Start-up warnings (development mode, no principals). */
  logger?: Pick<Logger, 'warn'>;
}

/** The development principal's id. */
export const DEVELOPMENT_PRINCIPAL_ID = 'development';

/** Longer bearer values are refused without hashing. */
const MAX_KEY_LENGTH = 4096;
const BEARER = /^Bearer[ ]+([\x21-\x7e]+)[ ]*$/i;

/**
 * Build the authenticator. Keys are compared by SHA-256: the presented key is hashed, looked up,
 * and the stored hash compared in constant time; `keyEnv` keys are hashed once here, so no key
 * is kept in memory in clear.
 *
 * Development mode (`auth.development: true`, logged loudly once): a request without an
 * `Authorization` header is the `development` principal, allowed every tool. A request that
 * does present a key must still present a known one, so a mistyped key fails visibly. With
 * development off and no principals configured, every request is refused (401).
 *
 * @throws GatewayError `INVALID_CONFIG` when a `keyEnv` variable is unset or two principals
 * share a key.
 *
 * @example
 * ```ts
 * const auth = createInboundAuth({ config: config.auth, env: process.env, logger });
 * const principal = auth.authenticate(request.headers); // throws UNAUTHENTICATED
 * principal.allows('orders__get_order');
 * ```
 */
export function createInboundAuth(options: InboundAuthOptions): InboundAuth {
  const { config } = options;
  const env = options.env ?? process.env;
  const byHash = new Map<string, { digest: Buffer; principal: Principal }>();

  config.principals.forEach((entry, index) => {
    let hex: string;
    if (entry.keySha256 !== undefined) {
      hex = entry.keySha256;
    } else {
      const name = entry.keyEnv!;
      // A trailing newline (KEY=$(cat key.txt)) could never be presented in a Bearer header.
      const key = env[name]?.trim();
      if (!key) {
        throw new GatewayError(
          'INVALID_CONFIG',
          `auth.principals[${index}].keyEnv: environment variable ${name} is not set — set ${name} to the API key`,
        );
      }
      hex = sha256Hex(key);
    }
    if (byHash.has(hex)) {
      throw new GatewayError(
        'INVALID_CONFIG',
        `auth.principals[${index}]: the same key as principal "${byHash.get(hex)!.principal.id}" — give each principal its own key`,
      );
    }
    const principal: Principal = Object.freeze({
      id: entry.id,
      kind: entry.kind,
      allows: toolMatcher(entry.tools),
      ...(entry.requestLimit ? { requestLimit: { ...entry.requestLimit } } : {}),
    });
    byHash.set(hex, { digest: Buffer.from(hex, 'hex'), principal });
  });

  const development = config.development;
  const developmentPrincipal: Principal = Object.freeze({
    id: DEVELOPMENT_PRINCIPAL_ID,
    kind: 'development' as const,
    allows: () => true,
  });
  if (development) {
    options.logger?.warn(
      { principals: config.principals.length },
      'DEVELOPMENT MODE: auth.development is true, so requests without credentials are accepted as principal ' +
        '"development" with every tool allowed. Never expose this gateway beyond your machine.',
    );
  } else if (config.principals.length === 0) {
    options.logger?.warn(
      {},
      'no auth.principals configured and auth.development is false: every request will be refused (401)',
    );
  }

  return {
    development,
    authenticate(headers) {
      const header = headers.get('authorization');
      if (header === null) {
        if (development) return developmentPrincipal;
        throw unauthenticated('Missing credentials: send Authorization: Bearer <API key>');
      }
      const match = header.length <= MAX_KEY_LENGTH + 16 ? BEARER.exec(header) : null;
      if (!match)
        throw unauthenticated('Malformed credentials: send Authorization: Bearer <API key>');
      const digest = createHash('sha256').update(match[1]!).digest();
      const found = byHash.get(digest.toString('hex'));
      // The lookup is by hash, so its timing says nothing about the key; the compare is
      // constant-time all the same.
      if (!found || !timingSafeEqual(found.digest, digest))
        throw unauthenticated('Invalid credentials');
      return found.principal;
    },
  };
}

/** Who a call is for, as the gateway forwards it (`sub`, `tnt`, `sid`, `idk`, trace). */
export interface EndUserContext {
  /** End user (from a service principal) or the calling principal's id. */
  user: string;
  tenant?: string;
  session?: string;
  idempotencyKey?: string;
  traceparent?: string;
}

/** Longest accepted user, tenant, session or idempotency key. */
export const MAX_CONTEXT_VALUE_LENGTH = 256;
const PRINTABLE = /^[^\p{C}]+$/u;
const TRACEPARENT =
  /^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(-[\x21-\x7e]*)?$/;

/**
 * The end-user context of one call from `params._meta` (DESIGN.md section 5).
 *
 * - `service` principals may pass `dev.keel/user`, `dev.keel/tenant`, `dev.keel/session`;
 *   without `dev.keel/user` the user is the principal itself.
 * - Every other principal (API keys, development) acts as itself: those keys are ignored and
 *   `user` is its id.
 * - `dev.keel/idempotencyKey` is honoured from any caller. It cannot collide across callers:
 *   tool servers scope a key by `(aud, sub, tool, idk)`, and `sub` of a non-service caller is
 *   its own principal id.
 * - `traceparent` is honoured from any caller when it is a valid W3C traceparent; an invalid
 *   one is dropped (as W3C Trace Context asks), not an error.
 *
 * @throws GatewayError `INVALID_INPUT` when an honoured value is not a string of 1-256
 * printable characters.
 *
 * @example
 * ```ts
 * endUserContext(orchestrator, { 'dev.keel/user': 'user-42', 'dev.keel/tenant': 'acme' });
 * // { user: 'user-42', tenant: 'acme' }
 * endUserContext(ideKey, { 'dev.keel/user': 'someone-else' });
 * // { user: 'alice-ide' }
 * ```
 */
export function endUserContext(
  principal: Principal,
  meta: Record<string, unknown> | undefined,
): EndUserContext {
  const context: EndUserContext = { user: principal.id };
  if (!meta) return context;
  if (principal.kind === 'service') {
    const user = contextValue(meta, META_KEYS.user);
    const tenant = contextValue(meta, META_KEYS.tenant);
    const session = contextValue(meta, META_KEYS.session);
    if (user !== undefined) context.user = user;
    if (tenant !== undefined) context.tenant = tenant;
    if (session !== undefined) context.session = session;
  }
  const idempotencyKey = contextValue(meta, META_KEYS.idempotencyKey);
  if (idempotencyKey !== undefined) context.idempotencyKey = idempotencyKey;
  const traceparent = meta[META_KEYS.traceparent];
  if (
    typeof traceparent === 'string' &&
    traceparent.length <= 512 &&
    TRACEPARENT.test(traceparent)
  ) {
    context.traceparent = traceparent;
  }
  return context;
}

function contextValue(meta: Record<string, unknown>, key: string): string | undefined {
  const value = meta[key];
  if (value === undefined) return undefined;
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length > MAX_CONTEXT_VALUE_LENGTH ||
    !PRINTABLE.test(value)
  ) {
    // The value itself is not echoed: it came from the caller and may be anything.
    throw new GatewayError(
      'INVALID_INPUT',
      `_meta["${key}"] must be a string of 1-${MAX_CONTEXT_VALUE_LENGTH} printable characters`,
      { details: { field: `_meta.${key}` } },
    );
  }
  return value;
}

/**
 * A matcher for exposed tool names: `*` matches any run of characters (`orders__*`), every
 * other character itself.
 */
export function toolMatcher(globs: readonly string[]): (exposedTool: string) => boolean {
  if (globs.includes('*')) return () => true;
  const patterns = globs.map(
    (glob) => new RegExp(`^${glob.split('*').map(escapeRegExp).join('.*')}$`, 's'),
  );
  return (exposedTool) => patterns.some((pattern) => pattern.test(exposedTool));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function unauthenticated(message: string): GatewayError {
  return new GatewayError('UNAUTHENTICATED', message);
}
