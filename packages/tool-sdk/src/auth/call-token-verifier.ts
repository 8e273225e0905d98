/**
 * Verifies the gateway's call tokens (DESIGN.md section 4).
 *
 * jose does what it is good at: fetching and caching the JWKS (cooldown on unknown `kid`s),
 * selecting the key by `kid` and `alg`, and importing JWKs and SPKI PEMs. The signature itself
 * is checked with `node:crypto`'s synchronous `verify` on a `KeyObject` cached per imported key,
 * and the header and claims are checked by the strict rules below. jose 6 verifies through
 * WebCrypto (async), which measured ~2× the CPU of `crypto.verify` per Ed25519 token, and a
 * token is verified on every call (benchmark P2, see README).
 */
import { createRemoteJWKSet, importJWK, importSPKI } from 'jose';
import type { CryptoKey, JWK, JWTHeaderParameters, FlattenedJWSInput } from 'jose';
import { KeyObject, timingSafeEqual, verify as cryptoVerify } from 'node:crypto';
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

type KeyLookup = (header: JWTHeaderParameters, token: FlattenedJWSInput) => Promise<KeyObject>;

/** Header parameters a call token may carry; anything else (jku, jwk, x5u, x5c, crit, b64, ...) is refused. */
const ALLOWED_HEADER_PARAMS = new Set(['alg', 'kid', 'typ']);
/** Segments of a compact JWS: base64url without padding, nothing else. */
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Bytes of a raw signature: Ed25519 and ES256 (IEEE P1363 r||s) are both 64. */
const SIGNATURE_BYTES = 64;
const REQUIRED_STRING_CLAIMS = ['iss', 'aud', 'sub', 'jti', 'mth', 'bh'] as const;
const OPTIONAL_STRING_CLAIMS = ['tnt', 'sid', 'tool', 'idk'] as const;

/** Build a verifier. `now` returns milliseconds (injected in tests). */
export async function createCallTokenVerifier(
  options: CallTokenAuthOptions & { audience: string },
  now: () => number = Date.now,
): Promise<CallTokenVerifier> {
  const algorithm = options.algorithm ?? 'EdDSA';
  const checkSignature =
    algorithm === 'EdDSA'
      ? (data: Buffer, key: KeyObject, signature: Buffer) =>
          cryptoVerify(null, data, key, signature)
      : // JWS ES256 signatures are r||s (IEEE P1363), not DER.
        (data: Buffer, key: KeyObject, signature: Buffer) =>
          cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);

  // One KeyObject per imported CryptoKey (jose caches the CryptoKey per JWK).
  const keyObjects = new WeakMap<CryptoKey, KeyObject>();
  const toKeyObject = (key: CryptoKey | KeyObject | Uint8Array): KeyObject => {
    if (key instanceof KeyObject) return checkKeyType(key, algorithm);
    if (key instanceof Uint8Array) throw unauthenticated('key is not an asymmetric public key');
    let keyObject = keyObjects.get(key);
    if (!keyObject) {
      keyObject = checkKeyType(KeyObject.from(key), algorithm);
      keyObjects.set(key, keyObject);
    }
    return keyObject;
  };

  let getKey: KeyLookup;
  if (options.jwksUrl) {
    const jwks = createRemoteJWKSet(new URL(options.jwksUrl), {
      cooldownDuration: 60_000,
      cacheMaxAge: 10 * 60_000,
      timeoutDuration: 2_000,
    });
    getKey = async (header, token) => toKeyObject(await jwks(header, token));
  } else if (options.publicKey !== undefined) {
    // Always a typed key: a PEM string used as an HMAC secret would reopen key confusion.
    const imported =
      typeof options.publicKey === 'string'
        ? await importSPKI(options.publicKey, algorithm)
        : await importJWK(options.publicKey, algorithm);
    let key: KeyObject;
    try {
      key = toKeyObject(imported);
    } catch {
      throw new ToolSdkError(
        'INVALID_CONFIG',
        `The call-token public key does not fit ${algorithm}`,
      );
    }
    getKey = () => Promise.resolve(key);
  } else {
    throw new ToolSdkError('INVALID_CONFIG', 'Call-token auth needs jwksUrl or publicKey');
  }

  return async (token, bodyHash) => {
    const first = token.indexOf('.');
    const second = first < 0 ? -1 : token.indexOf('.', first + 1);
    if (second < 0 || token.indexOf('.', second + 1) >= 0) throw unauthenticated('malformed token');
    const encodedHeader = token.slice(0, first);
    const encodedPayload = token.slice(first + 1, second);
    const encodedSignature = token.slice(second + 1);
    if (
      !BASE64URL.test(encodedHeader) ||
      !BASE64URL.test(encodedPayload) ||
      !BASE64URL.test(encodedSignature)
    ) {
      throw unauthenticated('malformed token');
    }
    const header = decodeJson(encodedHeader);
    if (!header) throw unauthenticated('malformed token');
    if (header.typ !== CALL_TOKEN_TYPE) throw unauthenticated('wrong typ');
    if (header.alg !== algorithm) throw unauthenticated('algorithm not accepted');
    for (const param of Object.keys(header)) {
      if (!ALLOWED_HEADER_PARAMS.has(param)) {
        throw unauthenticated(`header parameter ${param} not accepted`);
      }
    }
    if (header.kid !== undefined && typeof header.kid !== 'string') {
      throw unauthenticated('malformed token');
    }
    let key: KeyObject;
    try {
      key = await getKey(header as unknown as JWTHeaderParameters, {
        protected: encodedHeader,
        payload: encodedPayload,
        signature: encodedSignature,
      });
    } catch {
      throw unauthenticated('signature or claims rejected');
    }
    const signature = Buffer.from(encodedSignature, 'base64url');
    let valid = false;
    if (signature.length === SIGNATURE_BYTES) {
      try {
        valid = checkSignature(Buffer.from(token.slice(0, second)), key, signature);
      } catch {
        valid = false;
      }
    }
    if (!valid) throw unauthenticated('signature or claims rejected');

    const payload = decodeJson(encodedPayload);
    if (!payload) throw unauthenticated('signature or claims rejected');
    return checkClaims(payload, bodyHash, options, now);
  };
}

/** The claim rules, applied after the signature is good. */
function checkClaims(
  payload: Record<string, unknown>,
  bodyHash: string,
  options: { issuer: string; audience: string },
  now: () => number,
): VerifiedCallToken {
  for (const claim of REQUIRED_STRING_CLAIMS) {
    if (typeof payload[claim] !== 'string' || payload[claim] === '') {
      throw unauthenticated(`missing ${claim}`);
    }
  }
  for (const claim of OPTIONAL_STRING_CLAIMS) {
    if (payload[claim] !== undefined && typeof payload[claim] !== 'string') {
      throw unauthenticated(`malformed ${claim}`);
    }
  }
  if (payload.iss !== options.issuer) throw unauthenticated('wrong issuer');
  if (payload.aud !== options.audience) throw unauthenticated('wrong audience');
  const { iat, exp, nbf } = payload;
  if (!isNumericDate(iat)) throw unauthenticated('missing iat');
  if (!isNumericDate(exp)) throw unauthenticated('missing exp');
  if (nbf !== undefined && !isNumericDate(nbf)) throw unauthenticated('malformed nbf');
  const nowMs = now();
  const nowS = nowMs / 1000;
  const nowWholeS = Math.floor(nowS);
  if (exp <= nowWholeS - CALL_TOKEN_CLOCK_SKEW_S) throw unauthenticated('expired');
  if (nbf !== undefined && nbf > nowWholeS + CALL_TOKEN_CLOCK_SKEW_S) {
    throw unauthenticated('not yet valid');
  }
  if (iat > nowS + CALL_TOKEN_CLOCK_SKEW_S) throw unauthenticated('issued in the future');
  if (exp - iat > CALL_TOKEN_MAX_LIFETIME_S) throw unauthenticated('lifetime too long');
  if (!constantTimeEqual(payload.bh as string, bodyHash)) {
    throw unauthenticated('body hash mismatch');
  }
  return payload as unknown as VerifiedCallToken;
}

function checkKeyType(key: KeyObject, algorithm: CallTokenAlgorithm): KeyObject {
  const fits =
    key.type === 'public' &&
    (algorithm === 'EdDSA'
      ? key.asymmetricKeyType === 'ed25519'
      : key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1');
  if (!fits) throw unauthenticated('key does not fit the algorithm');
  return key;
}

function decodeJson(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function constantTimeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

function unauthenticated(reason: string): ToolSdkError {
  return new ToolSdkError('UNAUTHENTICATED', 'Invalid call token', { details: { reason } });
}
