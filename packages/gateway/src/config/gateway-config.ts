/**
 * The gateway's configuration: the shape of `gateway.yaml`, validated with zod.
 *
 * Every field has a production default, so the smallest file is a list of servers.
 */
import { z } from 'zod';
import { CALL_TOKEN_ALGORITHMS, SERVER_ID_PATTERN } from '@keel/tool-sdk/contract';

const ms = z.number().int().nonnegative();
/** A server id (DESIGN.md section 2); config files show the fix beside the bad value. */
const serverId = z
  .string()
  .regex(SERVER_ID_PATTERN, 'a server id is [a-z][a-z0-9-]{0,19} (no "_")');
const positiveMs = z.number().int().positive();

/** Retry with exponential backoff and full jitter. */
export const retryPolicySchema = z.strictObject({
  /** Attempts in all, the first included. */
  maxAttempts: z.number().int().min(1).max(10).default(3),
  /** First backoff ceiling; doubles per attempt (full jitter draws in `[0, ceiling]`). */
  baseDelayMs: ms.default(100),
  maxDelayMs: ms.default(2_000),
});

/** Circuit breaker per upstream replica. */
export const breakerPolicySchema = z.strictObject({
  /** Open after this many consecutive failures... */
  consecutiveFailures: z.number().int().min(1).default(5),
  /** ...or when this share of calls failed within `windowMs` (with at least `minCalls`). */
  failureRatio: z.number().gt(0).max(1).optional(),
  windowMs: positiveMs.default(10_000),
  minCalls: z.number().int().min(1).default(10),
  /** Time open before one half-open probe is let through. */
  halfOpenAfterMs: positiveMs.default(5_000),
  /** The probe's own timeout, so a hung probe never holds callers. */
  probeTimeoutMs: positiveMs.default(2_000),
});

/** Max concurrent calls per upstream replica, and how many may wait. */
export const bulkheadPolicySchema = z.strictObject({
  maxConcurrent: z.number().int().min(1).default(64),
  maxQueue: z.number().int().min(0).default(64),
});

/** One rate-limit rule, counted atomically in Redis across replicas. */
export const rateLimitRuleSchema = z.strictObject({
  /** What one counter is kept per. */
  per: z.enum(['tenant', 'user', 'server', 'tool']),
  /** Calls allowed per window. */
  limit: z.number().int().min(1),
  windowMs: positiveMs.default(60_000),
});

/** What to do when the rate-limit store (Redis) is unreachable. */
export const storeDownSchema = z.enum(['closed', 'open']);

/** Policies of a server, each field overridable per tool. */
export const policiesSchema = z.strictObject({
  /** Whole logical call, all attempts and fallbacks included. */
  deadlineMs: positiveMs.default(30_000),
  /** One attempt against one replica. */
  attemptTimeoutMs: positiveMs.default(10_000),
  retry: retryPolicySchema.default(retryPolicySchema.parse({})),
  breaker: breakerPolicySchema.default(breakerPolicySchema.parse({})),
  bulkhead: bulkheadPolicySchema.default(bulkheadPolicySchema.parse({})),
  rateLimits: z.array(rateLimitRuleSchema).default([]),
  /** Rate limits when Redis is down: refuse (`closed`, default) or let calls through. */
  rateLimitStoreDown: storeDownSchema.default('closed'),
});
export type Policies = z.infer<typeof policiesSchema>;

/** A per-tool override: any policy field, plus retry safety and fallbacks. */
export const toolOverrideSchema = z.strictObject({
  deadlineMs: positiveMs.optional(),
  attemptTimeoutMs: positiveMs.optional(),
  retry: retryPolicySchema.partial().optional(),
  rateLimits: z.array(rateLimitRuleSchema).optional(),
  rateLimitStoreDown: storeDownSchema.optional(),
  /** Safe to run twice (idempotent or read-only): retried after a lost reply, may fall back. */
  idempotent: z.boolean().optional(),
  /** Alternate logical servers, in order; each must serve a tool of the same name. */
  fallbacks: z.array(serverId).optional(),
});
export type ToolOverride = z.infer<typeof toolOverrideSchema>;

/** How the gateway authenticates to an upstream. */
export const upstreamAuthSchema = z.discriminatedUnion('mode', [
  /** A fresh call token per request (DESIGN.md section 4). */
  z.strictObject({ mode: z.literal('keel-jwt') }),
  /** No credentials (local or public servers). */
  z.strictObject({ mode: z.literal('none') }),
  /** A static bearer token read from an environment variable (third-party servers). */
  z.strictObject({ mode: z.literal('bearer'), tokenEnv: z.string().min(1) }),
]);
export type UpstreamAuth = z.infer<typeof upstreamAuthSchema>;

/** One logical tool server. */
export const serverSchema = z.strictObject({
  /** Also the audience of its call tokens. */
  id: serverId,
  /** Replica URLs of its Streamable HTTP endpoint. */
  urls: z.array(z.url({ protocol: /^https?$/ })).min(1),
  auth: upstreamAuthSchema.default({ mode: 'keel-jwt' }),
  policies: policiesSchema.default(policiesSchema.parse({})),
  /** Fallbacks for every tool of this server (a tool's own list wins). */
  fallbacks: z.array(serverId).default([]),
  /** Per-tool overrides, keyed by the upstream (unprefixed) tool name. */
  tools: z.record(z.string(), toolOverrideSchema).default({}),
  /** What a changed tool definition does: take it (`accept`) or hold it until approved. */
  onToolChange: z.enum(['accept', 'hold']).optional(),
});
export type ServerConfig = z.infer<typeof serverSchema>;

/** An inbound credential: an API key (IDEs, agents) or a service principal (orchestrator). */
export const principalSchema = z
  .strictObject({
    /** Also the `sub` of its calls (unless a service passes an end user): printable, no spaces. */
    id: z
      .string()
      .max(100)
      .regex(/^[\x21-\x7e]+$/, 'is not a valid principal id — use printable ASCII without spaces'),
    /** `apiKey` callers act as themselves; `service` callers may pass end-user `_meta`. */
    kind: z.enum(['apiKey', 'service']).default('apiKey'),
    /** sha256 hex of the key, so the file holds no secret... */
    keySha256: z
      .string()
      .regex(
        /^[0-9a-f]{64}$/,
        'is not a sha256 hex digest — write 64 lowercase hex digits (printf %s "$KEY" | sha256sum)',
      )
      .optional(),
    /** ...or the name of an environment variable holding the key. */
    keyEnv: z.string().min(1).optional(),
    /** Exposed tool names (globs, `*` matches any run of characters) it may list and call. */
    tools: z.array(z.string().min(1)).default(['*']),
    /** Its own request limit on the endpoint (HTTP 429 above it). */
    requestLimit: z
      .strictObject({ limit: z.number().int().min(1), windowMs: positiveMs.default(60_000) })
      .optional(),
  })
  .refine((p) => (p.keySha256 === undefined) !== (p.keyEnv === undefined), {
    message:
      'set exactly one of keySha256 or keyEnv — keySha256: sha256 hex of the key; keyEnv: the environment variable holding the key',
  });
export type PrincipalConfig = z.infer<typeof principalSchema>;

/** A signing key. The first key without `publishOnly` signs; all are published in the JWKS. */
export const signingKeySchema = z
  .strictObject({
    kid: z
      .string()
      .max(100)
      .regex(/^[\x21-\x7e]+$/, 'is not a valid key id — use printable ASCII without spaces'),
    /** PEM (PKCS#8) file of the private key... */
    privateKeyFile: z.string().min(1).optional(),
    /** ...or an environment variable holding the PEM. */
    privateKeyEnv: z.string().min(1).optional(),
    /** An old key still published during a rotation overlap, no longer used to sign. */
    publishOnly: z.boolean().default(false),
  })
  .refine((k) => (k.privateKeyFile === undefined) !== (k.privateKeyEnv === undefined), {
    message:
      'set exactly one of privateKeyFile or privateKeyEnv — a PKCS#8 PEM file (relative to the config file), or an environment variable holding the PEM',
  });
export type SigningKeyConfig = z.infer<typeof signingKeySchema>;

/** The whole file. */
export const gatewayConfigSchema = z.strictObject({
  gateway: z
    .strictObject({
      /** `iss` of every call token. */
      issuer: z.string().min(1).default('keel-gateway'),
      port: z.number().int().min(0).max(65_535).default(7070),
      host: z.string().min(1).default('127.0.0.1'),
      namespacing: z.enum(['always', 'auto', 'never']).default('always'),
      /** Body cap of the inbound endpoint. */
      maxBodyBytes: z
        .number()
        .int()
        .positive()
        .default(1024 * 1024),
    })
    .default({
      issuer: 'keel-gateway',
      port: 7070,
      host: '127.0.0.1',
      namespacing: 'always',
      maxBodyBytes: 1024 * 1024,
    }),
  auth: z
    .strictObject({
      /** No inbound credentials at all: development only, logged loudly. Must be explicit. */
      development: z.boolean().default(false),
      principals: z.array(principalSchema).default([]),
      /** Bearer token of the admin API, from this environment variable. */
      adminKeyEnv: z.string().min(1).optional(),
    })
    .default({ development: false, principals: [] }),
  signing: z
    .strictObject({
      algorithm: z.enum(CALL_TOKEN_ALGORITHMS).default('EdDSA'),
      /** No keys: a development key is generated and shared through Redis. */
      keys: z.array(signingKeySchema).default([]),
    })
    .default({ algorithm: 'EdDSA', keys: [] }),
  catalog: z
    .strictObject({
      refreshMs: positiveMs.default(60_000),
      /** Default for servers without `onToolChange`. */
      onToolChange: z.enum(['accept', 'hold']).default('hold'),
    })
    .default({ refreshMs: 60_000, onToolChange: 'hold' }),
  health: z
    .strictObject({
      intervalMs: positiveMs.default(5_000),
      timeoutMs: positiveMs.default(2_000),
      /** Consecutive failed checks before a replica is marked unhealthy. */
      unhealthyAfter: z.number().int().min(1).default(3),
    })
    .default({ intervalMs: 5_000, timeoutMs: 2_000, unhealthyAfter: 3 }),
  /** Defaults for every server's `policies`. */
  defaults: z.strictObject({ policies: policiesSchema.partial().optional() }).default({}),
  servers: z.array(serverSchema).default([]),
});
export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;
