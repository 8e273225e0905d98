import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, redisReady } from '@keel/tool-sdk';
import { GatewayError } from '../errors/gateway-error.js';
import { createKeyRing } from './key-ring.js';
import type { KeyRingOptions } from './key-ring.js';

const pem = (kind: 'ed25519' | 'p256' | 'p384' | 'rsa') => {
  const { privateKey } =
    kind === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : kind === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ec', { namedCurve: kind === 'p256' ? 'P-256' : 'P-384' });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
};

function recordingLogger() {
  const lines: Array<{ obj: unknown; msg: string }> = [];
  return {
    lines,
    logger: {
      warn: (obj: unknown, msg: string) => lines.push({ obj, msg }),
    } as unknown as NonNullable<KeyRingOptions['logger']>,
  };
}

async function refusal(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (error) {
    expect(GatewayError.isInstance(error)).toBe(true);
    return error as GatewayError;
  }
  throw new Error('expected a refusal');
}

describe('createKeyRing with configured keys', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keel-gw-keys-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads an Ed25519 PKCS#8 PEM from a file and publishes its public half', async () => {
    const file = join(dir, 'ed.pem');
    await writeFile(file, pem('ed25519'));
    const ring = await createKeyRing({
      config: {
        algorithm: 'EdDSA',
        keys: [{ kid: 'k1', privateKeyFile: file, publishOnly: false }],
      },
    });
    expect(ring.signingKey.kid).toBe('k1');
    expect(ring.signingKey.privateKey.asymmetricKeyType).toBe('ed25519');
    expect(ring.development).toBe(false);
    const [jwk] = ring.jwks().keys;
    expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid: 'k1', alg: 'EdDSA', use: 'sig' });
    expect(jwk).not.toHaveProperty('d');
  });

  it('loads a P-256 key for ES256 from an environment variable, literal "\\n" included', async () => {
    const oneLine = pem('p256').replace(/\n/g, '\\n');
    const ring = await createKeyRing({
      config: {
        algorithm: 'ES256',
        keys: [{ kid: 'es', privateKeyEnv: 'SIGNING_PEM', publishOnly: false }],
      },
      env: { SIGNING_PEM: oneLine },
    });
    expect(ring.jwks().keys[0]).toMatchObject({
      kty: 'EC',
      crv: 'P-256',
      kid: 'es',
      alg: 'ES256',
      use: 'sig',
    });
    expect(ring.jwks().keys[0]).not.toHaveProperty('d');
  });

  it('rotation: the first key without publishOnly signs; every configured key is published', async () => {
    const env = { NEW: pem('ed25519'), OLD: pem('ed25519') };
    const overlap = await createKeyRing({
      config: {
        algorithm: 'EdDSA',
        keys: [
          { kid: 'old', privateKeyEnv: 'OLD', publishOnly: true },
          { kid: 'new', privateKeyEnv: 'NEW', publishOnly: false },
        ],
      },
      env,
    });
    expect(overlap.signingKey.kid).toBe('new');
    expect(overlap.jwks().keys.map((k) => k.kid)).toEqual(['old', 'new']);
    const after = await createKeyRing({
      config: {
        algorithm: 'EdDSA',
        keys: [{ kid: 'new', privateKeyEnv: 'NEW', publishOnly: false }],
      },
      env,
    });
    expect(after.jwks().keys.map((k) => k.kid)).toEqual(['new']);
  });

  it('the JWKS document is frozen, so a caller cannot change what is served', async () => {
    const ring = await createKeyRing({
      config: { algorithm: 'EdDSA', keys: [{ kid: 'k', privateKeyEnv: 'K', publishOnly: false }] },
      env: { K: pem('ed25519') },
    });
    expect(Object.isFrozen(ring.jwks())).toBe(true);
    expect(Object.isFrozen(ring.jwks().keys[0])).toBe(true);
  });

  it('S15 refuses a key of another algorithm than the pinned one', async () => {
    for (const [algorithm, kind] of [
      ['EdDSA', 'p256'],
      ['ES256', 'ed25519'],
      ['ES256', 'p384'],
      ['EdDSA', 'rsa'],
    ] as const) {
      const error = await refusal(
        createKeyRing({
          config: { algorithm, keys: [{ kid: 'k', privateKeyEnv: 'K', publishOnly: false }] },
          env: { K: pem(kind) },
        }),
      );
      expect(error.code).toBe('INVALID_CONFIG');
      expect(error.message).toContain(`signing.keys[0].privateKeyEnv (K): a `);
      expect(error.message).toContain(
        `but signing.algorithm is ${algorithm} — make one with: openssl genpkey`,
      );
    }
  });

  it('S15 refuses what is not a private key, without echoing it', async () => {
    const publicPem = generateKeyPairSync('ed25519').publicKey.export({
      format: 'pem',
      type: 'spki',
    }) as string;
    for (const value of ['not a pem at all', publicPem]) {
      const error = await refusal(
        createKeyRing({
          config: {
            algorithm: 'EdDSA',
            keys: [{ kid: 'k', privateKeyEnv: 'K', publishOnly: false }],
          },
          env: { K: value },
        }),
      );
      expect(error.code).toBe('INVALID_CONFIG');
      expect(error.message).toContain(
        'signing.keys[0].privateKeyEnv (K): not an unencrypted PEM private key',
      );
      expect(error.message).not.toContain(value.slice(0, 20));
    }
  });

  it('S15 a missing key file or variable', async () => {
    const missingFile = await refusal(
      createKeyRing({
        config: {
          algorithm: 'EdDSA',
          keys: [{ kid: 'k', privateKeyFile: join(dir, 'none.pem'), publishOnly: false }],
        },
      }),
    );
    expect(missingFile.message).toContain('signing.keys[0].privateKeyFile');
    expect(missingFile.message).toContain('cannot read the file (ENOENT)');
    const missingEnv = await refusal(
      createKeyRing({
        config: {
          algorithm: 'EdDSA',
          keys: [{ kid: 'k', privateKeyEnv: 'NOPE', publishOnly: false }],
        },
        env: {},
      }),
    );
    expect(missingEnv.message).toContain('environment variable NOPE is not set');
  });

  it('S15 refuses a ring where every key is publishOnly', async () => {
    const error = await refusal(
      createKeyRing({
        config: { algorithm: 'EdDSA', keys: [{ kid: 'k', privateKeyEnv: 'K', publishOnly: true }] },
        env: { K: pem('ed25519') },
      }),
    );
    expect(error.message).toContain('every key is publishOnly');
  });
});

describe('createKeyRing development key', () => {
  it('without Redis: a generated key in memory, a loud warning with the kid, never the private key', async () => {
    const { lines, logger } = recordingLogger();
    const ring = await createKeyRing({ config: { algorithm: 'EdDSA', keys: [] }, logger });
    expect(ring.development).toBe(true);
    expect(ring.signingKey.kid).toMatch(/^dev-[A-Za-z0-9_-]{16}$/);
    expect(ring.jwks().keys.map((k) => k.kid)).toEqual([ring.signingKey.kid]);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.msg).toContain('DEVELOPMENT SIGNING KEY');
    expect(lines[0]!.msg).toContain(ring.signingKey.kid);
    expect(lines[0]!.obj).toMatchObject({ kid: ring.signingKey.kid, sharedVia: 'memory' });
    const privateD = (ring.signingKey.privateKey.export({ format: 'jwk' }) as { d: string }).d;
    expect(JSON.stringify(lines)).not.toContain(privateD);
  });

  it('two rings without Redis have different keys (why replicas need Redis)', async () => {
    const a = await createKeyRing({ config: { algorithm: 'ES256', keys: [] } });
    const b = await createKeyRing({ config: { algorithm: 'ES256', keys: [] } });
    expect(a.signingKey.kid).not.toBe(b.signingKey.kid);
    expect(a.jwks().keys[0]).toMatchObject({ crv: 'P-256', alg: 'ES256' });
  });

  describe('shared through real Redis', () => {
    const redis = createRedisClient('redis://127.0.0.1:6379');
    const keys: string[] = [];
    const uniqueKey = () => {
      const key = `keel:test:gw:devkey:${randomUUID()}`;
      keys.push(key);
      return key;
    };
    beforeAll(() => redisReady(redis));
    afterAll(async () => {
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    });

    it('every replica signs with the first replica’s key', async () => {
      const redisKey = uniqueKey();
      const { lines, logger } = recordingLogger();
      const [a, b] = await Promise.all([
        createKeyRing({ config: { algorithm: 'EdDSA', keys: [] }, redis, redisKey, logger }),
        createKeyRing({ config: { algorithm: 'EdDSA', keys: [] }, redis, redisKey, logger }),
      ]);
      expect(a.signingKey.kid).toBe(b.signingKey.kid);
      expect(a.jwks()).toEqual(b.jwks());
      const exportD = (r: typeof a) =>
        (r.signingKey.privateKey.export({ format: 'jwk' }) as { d: string }).d;
      expect(exportD(a)).toBe(exportD(b));
      // A replica started later (or after a restart) gets the same key too.
      const c = await createKeyRing({ config: { algorithm: 'EdDSA', keys: [] }, redis, redisKey });
      expect(c.signingKey.kid).toBe(a.signingKey.kid);
      expect(lines[0]!.obj).toMatchObject({ sharedVia: 'redis', redisKey, kid: a.signingKey.kid });
      expect(JSON.stringify(lines)).not.toContain(exportD(a));
      const stored = JSON.parse((await redis.get(redisKey))!) as { kid: string; alg: string };
      expect(stored).toMatchObject({ kid: a.signingKey.kid, alg: 'EdDSA' });
    });

    it('S15 a replica pinned to another algorithm than the shared key refuses to start', async () => {
      const redisKey = uniqueKey();
      await createKeyRing({ config: { algorithm: 'EdDSA', keys: [] }, redis, redisKey });
      const error = await refusal(
        createKeyRing({ config: { algorithm: 'ES256', keys: [] }, redis, redisKey }),
      );
      expect(error.code).toBe('INVALID_CONFIG');
      expect(error.message).toContain(`is EdDSA, but signing.algorithm is ES256`);
      expect(error.message).toContain(`DEL ${redisKey}`);
    });

    it('an unreadable stored key is refused with the fix', async () => {
      const redisKey = uniqueKey();
      await redis.set(redisKey, '{not json');
      const error = await refusal(
        createKeyRing({ config: { algorithm: 'EdDSA', keys: [] }, redis, redisKey }),
      );
      expect(error.message).toContain(`is unreadable — delete it (DEL ${redisKey})`);
    });

    it('Redis unreachable: refuses (UNAVAILABLE) rather than signing with a key of its own', async () => {
      const down = createRedisClient('redis://127.0.0.1:1');
      try {
        const error = await refusal(
          createKeyRing({
            config: { algorithm: 'EdDSA', keys: [] },
            redis: down,
            redisKey: uniqueKey(),
            redisReadyTimeoutMs: 100,
          }),
        );
        expect(error.code).toBe('UNAVAILABLE');
        expect(error.message).toContain(
          'could not share the development signing key through Redis',
        );
      } finally {
        down.disconnect();
      }
    });
  });
});
