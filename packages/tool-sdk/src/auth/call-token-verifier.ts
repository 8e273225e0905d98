import { createRemoteJWKSet, decodeProtectedHeader, importJWK, importSPKI, jwtVerify } from 'jose';
import type { JWK, JWTVerifyGetKey } from 'jose';
import { timingSafeEqual } from 'node:crypto';
import {
  CALL_TOKEN_CLOCK_SKEW_S,
  CALL_TOKEN_MAX_LIFETIME_S,
  CALL_TOKEN_TYPE,
} from '../contract/index.js';
import type { CallTokenAlgorithm, CallTokenClaims } from '../contract/index.js';
import { ToolSdkError } from '../errors/tool-sdk-error.js';

/** How a tool server verifies the gateway's call tokens. */
export interface CallTokenAuthOptions {
  /** The gateway's issuer id, compared exactly. */
  issuer: string;
  /** This server's audience; defaults to the server id. */
  audience?: string;
  /** The one accepted algorithm. Default `EdDSA`. */
  algorithm?: CallTokenAlgorithm;
  /** The gateway's JWKS URL (cached; refetched on an unknown `kid` at most once a minute). */
  jwksUrl?: string;
  /** Or a static public key: SPKI PEM or a public JWK. */
  publicKey?: string | JWK;
}

/** A verified token. */
export type VerifiedCallToken = CallTokenClaims;

/** Verifies a token against the body hash; throws UNAUTHENTICATED with a reason. */
export type CallTokenVerifier = (token: string, bodyHash: string) => Promise<VerifiedCallToken>;

const FORBIDDEN_HEADER_PARAMS = ['jku', 'jwk', 'x5u', 'x5c', 'crit'];

/** Build a verifier. `now` returns milliseconds (injected in tests). */
export async function createCallTokenVerifier(
  options: CallTokenAuthOptions & { audience: string },
  now: () => number = Date.now,
): Promise<CallTokenVerifier> {
  const algorithm = options.algorithm ?? 'EdDSA';
  let getKey: JWTVerifyGetKey;
  if (options.jwksUrl) {
    const jwks = createRemoteJWKSet(new URL(options.jwksUrl), {
      cooldownDuration: 60_000,
      cacheMaxAge: 10 * 60_000,
      timeoutDuration: 2_000,
    });
    getKey = (header, token) => jwks(header, token);
  } else if (options.publicKey !== undefined) {
    // Always a typed key: a PEM string used as an HMAC secret would reopen key confusion.
    const key =
      typeof options.publicKey === 'string'
        ? await importSPKI(options.publicKey, algorithm)
        : await importJWK(options.publicKey, algorithm);
    getKey = () => key;
  } else {
    throw new ToolSdkError('INVALID_CONFIG', 'Call-token auth needs jwksUrl or publicKey');
  }

  return async (token, bodyHash) => {
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw unauthenticated('malformed token');
    }
    if (header.typ !== CALL_TOKEN_TYPE) throw unauthenticated('wrong typ');
    if (header.alg !== algorithm) throw unauthenticated('algorithm not accepted');
    for (const param of FORBIDDEN_HEADER_PARAMS) {
      if (param in header) throw unauthenticated(`header parameter ${param} not accepted`);
    }
    let payload: Record<string, unknown>;
    try {
      const verified = await jwtVerify(token, getKey, {
        algorithms: [algorithm],
        issuer: options.issuer,
        audience: options.audience,
        clockTolerance: CALL_TOKEN_CLOCK_SKEW_S,
        currentDate: new Date(now()),
        requiredClaims: ['iss', 'aud', 'sub', 'iat', 'exp', 'jti'],
      });
      payload = verified.payload as Record<string, unknown>;
    } catch {
      throw unauthenticated('signature or claims rejected');
    }
    if (payload.aud !== options.audience) throw unauthenticated('wrong audience');
    const iat = payload.iat as number;
    const exp = payload.exp as number;
    const nowS = now() / 1000;
    if (iat > nowS + CALL_TOKEN_CLOCK_SKEW_S) throw unauthenticated('issued in the future');
    if (exp - iat > CALL_TOKEN_MAX_LIFETIME_S) throw unauthenticated('lifetime too long');
    for (const claim of ['sub', 'jti', 'mth', 'bh'] as const) {
      if (typeof payload[claim] !== 'string' || payload[claim] === '') {
        throw unauthenticated(`missing ${claim}`);
      }
    }
    if (!constantTimeEqual(payload.bh as string, bodyHash))
      throw unauthenticated('body hash mismatch');
    return payload as unknown as VerifiedCallToken;
  };
}

function constantTimeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

function unauthenticated(reason: string): ToolSdkError {
  return new ToolSdkError('UNAUTHENTICATED', 'Invalid call token', { details: { reason } });
}
