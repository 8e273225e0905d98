/**
 * The gateway's signing keys (DESIGN.md section 4): the one that signs call tokens, and every
 * key tool servers should still trust, published as the JWKS at `/.well-known/jwks.json`.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { calculateJwkThumbprint } from 'jose';
import type { JWK } from 'jose';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redisReady } from '@keel/tool-sdk';
import type { CallTokenAlgorithm } from '@keel/tool-sdk/contract';
import type { GatewayConfig, SigningKeyConfig } from '../config/gateway-config.js';
import { GatewayError } from '../errors/gateway-error.js';

/** Default Redis key of the shared development key. */
export const DEV_KEY_REDIS_KEY = 'keel:gw:devkey';

/** A public key as published: `kid`, `alg`, `use: "sig"`. */
export interface PublishedJwk extends JWK {
  kid: string;
  alg: CallTokenAlgorithm;
  use: 'sig';
}

/** The JWKS document tool servers fetch. */
export interface JwksDocument {
  keys: readonly PublishedJwk[];
}

/** The key call tokens are signed with. */
export interface SigningKey {
  readonly kid: string;
  readonly algorithm: CallTokenAlgorithm;
  /** Imported once; reused for every signature. */
  readonly privateKey: KeyObject;
}

/** The loaded keys. */
export interface KeyRing {
  readonly algorithm: CallTokenAlgorithm;
  /** The first configured key without `publishOnly`, or the development key. */
  readonly signingKey: SigningKey;
  /** Whether `signingKey` is a generated development key. */
  readonly development: boolean;
  /** Every key's public half, in config order (frozen; safe to serve as is). */
  jwks(): JwksDocument;
}

/** Options of {@link createKeyRing}. */
export interface KeyRingOptions {
  /** `signing` of the gateway config. */
  config: GatewayConfig['signing'];
  /** Where `privateKeyEnv` PEMs are read; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Warned loudly when a development key is in use. */
  logger?: Pick<Logger, 'warn'>;
  /** Shares the development key between replicas; without it the key lives in memory. */
  redis?: Redis;
  /** Redis key of the development key; default {@link DEV_KEY_REDIS_KEY}. */
  redisKey?: string;
  /** How long to wait for a Redis client that is still connecting; default 5000 ms. */
  redisReadyTimeoutMs?: number;
}

/**
 * Load the signing keys of the config (PEM from a file or an environment variable, PKCS#8;
 * SEC1 EC keys are accepted too) and check each against the pinned algorithm: `EdDSA` takes
 * Ed25519 keys, `ES256` P-256 keys.
 *
 * With no keys configured (development), one key pair is generated and shared through Redis
 * (`SET <redisKey> <jwk> NX`, then `GET`: the first replica's key wins and every replica signs
 * with it, also after restarts); without Redis the key lives in this process only. Either way
 * a loud warning with the public `kid` is logged. The private key is never logged.
 *
 * @throws GatewayError `INVALID_CONFIG` for an unreadable or mismatched key; `UNAVAILABLE`
 * when Redis cannot be reached to share the development key.
 *
 * @example
 * ```ts
 * const ring = await createKeyRing({ config: config.signing, redis, logger });
 * ring.jwks(); // { keys: [{ kty: 'OKP', crv: 'Ed25519', x: '...', kid: 'k1', alg: 'EdDSA', use: 'sig' }] }
 * ```
 */
export async function createKeyRing(options: KeyRingOptions): Promise<KeyRing> {
  const { algorithm, keys } = options.config;
  const env = options.env ?? process.env;

  if (keys.length === 0) {
    const { kid, privateKey, sharedVia } = await developmentKey(algorithm, options);
    options.logger?.warn(
      {
        kid,
        algorithm,
        sharedVia,
        ...(options.redis ? { redisKey: options.redisKey ?? DEV_KEY_REDIS_KEY } : {}),
      },
      `DEVELOPMENT SIGNING KEY IN USE (kid ${kid}): signing.keys is empty, so call tokens are signed with a generated key ` +
        `${sharedVia === 'redis' ? 'shared through Redis' : 'held in this process only'}. Configure signing.keys for production.`,
    );
    return ring(
      algorithm,
      { kid, algorithm, privateKey },
      [publish(privateKey, kid, algorithm)],
      true,
    );
  }

  const loaded = await Promise.all(
    keys.map(async (key, index) => ({
      key,
      privateKey: await loadKey(key, index, algorithm, env),
    })),
  );
  const signer = loaded.find(({ key }) => !key.publishOnly);
  if (!signer) {
    throw new GatewayError(
      'INVALID_CONFIG',
      'signing.keys: every key is publishOnly, so none can sign — set publishOnly: false on the new key',
    );
  }
  return ring(
    algorithm,
    { kid: signer.key.kid, algorithm, privateKey: signer.privateKey },
    loaded.map(({ key, privateKey }) => publish(privateKey, key.kid, algorithm)),
    false,
  );
}

function ring(
  algorithm: CallTokenAlgorithm,
  signingKey: SigningKey,
  published: PublishedJwk[],
  development: boolean,
): KeyRing {
  const document: JwksDocument = Object.freeze({
    keys: Object.freeze(published.map((jwk) => Object.freeze(jwk))),
  });
  return { algorithm, signingKey, development, jwks: () => document };
}

function publish(privateKey: KeyObject, kid: string, algorithm: CallTokenAlgorithm): PublishedJwk {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
  return { ...jwk, kid, alg: algorithm, use: 'sig' };
}

async function loadKey(
  key: SigningKeyConfig,
  index: number,
  algorithm: CallTokenAlgorithm,
  env: Readonly<Record<string, string | undefined>>,
): Promise<KeyObject> {
  const field = `signing.keys[${index}]`;
  let pem: string;
  let source: string;
  if (key.privateKeyFile !== undefined) {
    source = `${field}.privateKeyFile (${key.privateKeyFile})`;
    try {
      pem = await readFile(key.privateKeyFile, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new GatewayError(
        'INVALID_CONFIG',
        `${source}: cannot read the file (${code}) — point it at a PKCS#8 PEM private key`,
      );
    }
  } else {
    const name = key.privateKeyEnv!;
    source = `${field}.privateKeyEnv (${name})`;
    const value = env[name];
    if (!value) {
      throw new GatewayError(
        'INVALID_CONFIG',
        `${source}: environment variable ${name} is not set — set it to a PKCS#8 PEM private key`,
      );
    }
    // PEMs pasted into one-line environment values often carry literal "\n".
    pem = value.includes('\n') ? value : value.replace(/\\n/g, '\n');
  }

  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    // The parser's own message may quote the input: never pass it on.
    throw new GatewayError(
      'INVALID_CONFIG',
      `${source}: not an unencrypted PEM private key — ${generateHint(algorithm)}`,
    );
  }
  const actual = keyAlgorithm(privateKey);
  if (actual !== algorithm) {
    throw new GatewayError(
      'INVALID_CONFIG',
      `${source}: a ${describeKey(privateKey)} key, but signing.algorithm is ${algorithm} — ${generateHint(algorithm)}, or set signing.algorithm`,
    );
  }
  return privateKey;
}

function keyAlgorithm(key: KeyObject): CallTokenAlgorithm | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    return 'ES256';
  }
  return undefined;
}

function describeKey(key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve ? `${key.asymmetricKeyType} ${curve}` : String(key.asymmetricKeyType);
}

function generateHint(algorithm: CallTokenAlgorithm): string {
  return algorithm === 'EdDSA'
    ? 'make one with: openssl genpkey -algorithm ed25519 -out signing-key.pem'
    : 'make one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out signing-key.pem';
}

interface StoredDevKey extends JWK {
  kid: string;
  alg: CallTokenAlgorithm;
}

async function developmentKey(
  algorithm: CallTokenAlgorithm,
  options: KeyRingOptions,
): Promise<{ kid: string; privateKey: KeyObject; sharedVia: 'redis' | 'memory' }> {
  const { privateKey } =
    algorithm === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicJwk = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
  const kid = `dev-${(await calculateJwkThumbprint(publicJwk, 'sha256')).slice(0, 16)}`;
  if (!options.redis) return { kid, privateKey, sharedVia: 'memory' };

  const redisKey = options.redisKey ?? DEV_KEY_REDIS_KEY;
  const mine: StoredDevKey = {
    ...(privateKey.export({ format: 'jwk' }) as JWK),
    kid,
    alg: algorithm,
  };
  let stored: string | null;
  try {
    // A client made a moment ago is still connecting, and request-path clients keep no offline queue.
    await redisReady(options.redis, options.redisReadyTimeoutMs ?? 5_000);
    await options.redis.set(redisKey, JSON.stringify(mine), 'NX');
    stored = await options.redis.get(redisKey);
  } catch (error) {
    // Signing with a key of our own would make this replica's tokens fail at tool servers
    // that fetched another replica's JWKS: refuse instead.
    throw new GatewayError(
      'UNAVAILABLE',
      `could not share the development signing key through Redis (${redisKey}) — check REDIS_URL, or configure signing.keys`,
      { cause: error },
    );
  }
  if (stored === null) {
    throw new GatewayError(
      'UNAVAILABLE',
      `the development signing key vanished from Redis (${redisKey}) while it was being shared — restart`,
    );
  }
  return { ...readStoredKey(stored, algorithm, redisKey), sharedVia: 'redis' };
}

function readStoredKey(
  stored: string,
  algorithm: CallTokenAlgorithm,
  redisKey: string,
): { kid: string; privateKey: KeyObject } {
  let jwk: StoredDevKey;
  let privateKey: KeyObject;
  try {
    jwk = JSON.parse(stored) as StoredDevKey;
    const { kid: _kid, alg: _alg, ...material } = jwk;
    privateKey = createPrivateKey({ key: material, format: 'jwk' });
  } catch {
    throw new GatewayError(
      'INVALID_CONFIG',
      `the development signing key in Redis (${redisKey}) is unreadable — delete it (DEL ${redisKey}) and restart every replica`,
    );
  }
  if (
    jwk.alg !== algorithm ||
    keyAlgorithm(privateKey) !== algorithm ||
    typeof jwk.kid !== 'string'
  ) {
    throw new GatewayError(
      'INVALID_CONFIG',
      `the development signing key in Redis (${redisKey}) is ${String(jwk.alg)}, but signing.algorithm is ${algorithm} — ` +
        `use the same algorithm on every replica, or delete the key (DEL ${redisKey}) and restart every replica`,
    );
  }
  return { kid: jwk.kid, privateKey };
}
