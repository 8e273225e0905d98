/**
 * The per-call token the gateway mints for every request it forwards (DESIGN.md section 4).
 */

/** The exact `typ` header value, compared case-sensitively. */
export const CALL_TOKEN_TYPE = 'keel-call+jwt';

/** The algorithms a call token may be signed with; each deployment pins one. */
export const CALL_TOKEN_ALGORITHMS = ['EdDSA', 'ES256'] as const;
export type CallTokenAlgorithm = (typeof CALL_TOKEN_ALGORITHMS)[number];

/** Longest allowed `exp - iat`, in seconds. */
export const CALL_TOKEN_MAX_LIFETIME_S = 60;
/** Clock skew tolerated on `iat` and `exp`, in seconds. */
export const CALL_TOKEN_CLOCK_SKEW_S = 5;

/** The claims of a call token. */
export interface CallTokenClaims {
  /** The gateway's issuer id. */
  iss: string;
  /** The logical tool server's id. */
  aud: string;
  /** End user id, or the calling principal's id. */
  sub: string;
  /** Tenant, when known. */
  tnt?: string;
  /** Session id, when known. */
  sid?: string;
  iat: number;
  exp: number;
  /** Unique per attempt. */
  jti: string;
  /** The JSON-RPC method of the body. */
  mth: string;
  /** The unprefixed tool name; only for `tools/call`. */
  tool?: string;
  /** base64url SHA-256 of the exact body bytes. */
  bh: string;
  /** Idempotency key of the logical call. */
  idk?: string;
}

/** Well-known JWKS path on the gateway. */
export const JWKS_PATH = '/.well-known/jwks.json';
