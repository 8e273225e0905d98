import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { authConfigFromEnv } from './auth-config-from-env.js';
import { createAuthenticator } from './create-authenticator.js';

const sha = (key: string) => createHash('sha256').update(key).digest('hex');
const files = (map: Record<string, string>) => ({
  readFile: (path: string) => {
    const text = map[path];
    if (text === undefined) throw new Error(`ENOENT: ${path}`);
    return text;
  },
});

describe('authConfigFromEnv', () => {
  it('reads JWT settings with defaults', () => {
    const config = authConfigFromEnv({
      KEEL_AUTH_JWKS_URL: 'https://idp.example/jwks.json',
      KEEL_AUTH_ISSUER: 'https://idp.example/',
      KEEL_AUTH_AUDIENCE: 'keel',
    });
    expect(config).toEqual({
      jwt: {
        jwksUrl: 'https://idp.example/jwks.json',
        issuer: 'https://idp.example/',
        audience: 'keel',
        algorithms: ['RS256', 'ES256', 'EdDSA'],
      },
    });
    const custom = authConfigFromEnv({
      KEEL_AUTH_JWKS_URL: 'https://idp.example/jwks.json',
      KEEL_AUTH_ISSUER: 'https://idp.example/',
      KEEL_AUTH_AUDIENCE: 'keel, keel-2',
      KEEL_AUTH_TENANT_CLAIM: 'org_id',
      KEEL_AUTH_ALGORITHMS: 'ES256',
    });
    expect(custom.jwt).toMatchObject({
      audience: ['keel', 'keel-2'],
      tenantClaim: 'org_id',
      algorithms: ['ES256'],
    });
  });

  it('names the variable and the fix for incomplete or invalid JWT settings', () => {
    const base = { KEEL_AUTH_JWKS_URL: 'https://idp.example/jwks.json' };
    expect(() => authConfigFromEnv({ ...base, KEEL_AUTH_AUDIENCE: 'k' })).toThrow(
      /KEEL_AUTH_ISSUER is not set — set it/,
    );
    expect(() => authConfigFromEnv({ ...base, KEEL_AUTH_ISSUER: 'i' })).toThrow(
      /KEEL_AUTH_AUDIENCE is not set/,
    );
    expect(() =>
      authConfigFromEnv({
        KEEL_AUTH_JWKS_URL: 'ftp://x',
        KEEL_AUTH_ISSUER: 'i',
        KEEL_AUTH_AUDIENCE: 'a',
      }),
    ).toThrow(/KEEL_AUTH_JWKS_URL must be an http\(s\) URL/);
    expect(() => authConfigFromEnv({ KEEL_AUTH_ISSUER: 'i', KEEL_AUTH_AUDIENCE: 'a' })).toThrow(
      /KEEL_AUTH_ISSUER is set but KEEL_AUTH_JWKS_URL is not/,
    );
    expect(() =>
      authConfigFromEnv({
        ...base,
        KEEL_AUTH_ISSUER: 'i',
        KEEL_AUTH_AUDIENCE: 'a',
        KEEL_AUTH_ALGORITHMS: 'HS256',
      }),
    ).toThrow(/KEEL_AUTH_ALGORITHMS has "HS256"/);
    expect(() =>
      authConfigFromEnv({
        ...base,
        KEEL_AUTH_ISSUER: 'i',
        KEEL_AUTH_AUDIENCE: 'a',
        KEEL_AUTH_TENANT_CLAIM: 'bad claim',
      }),
    ).toThrow(/KEEL_AUTH_TENANT_CLAIM/);
  });

  it('reads a static public key file', () => {
    const pem = '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n';
    const config = authConfigFromEnv(
      { KEEL_AUTH_PUBLIC_KEY_FILE: '/k.pem', KEEL_AUTH_ISSUER: 'i', KEEL_AUTH_AUDIENCE: 'a' },
      files({ '/k.pem': pem }),
    );
    expect(config.jwt?.publicKeyPem).toBe(pem);
    expect(() =>
      authConfigFromEnv(
        {
          KEEL_AUTH_PUBLIC_KEY_FILE: '/missing.pem',
          KEEL_AUTH_ISSUER: 'i',
          KEEL_AUTH_AUDIENCE: 'a',
        },
        files({}),
      ),
    ).toThrow(/KEEL_AUTH_PUBLIC_KEY_FILE: cannot read/);
  });

  it('reads a YAML keys file (hash or key) and a JSON one; the config works end to end', async () => {
    const yaml = [
      `- id: alice`,
      `  key: alice-secret-key-0001`,
      `  tenant: acme`,
      `  user: alice`,
      `- id: backend`,
      `  hash: ${sha('backend-secret-key-01').toUpperCase()}`,
      `  tenant: acme`,
      `  service: true`,
    ].join('\n');
    const config = authConfigFromEnv(
      { KEEL_API_KEYS_FILE: '/keys.yaml' },
      files({ '/keys.yaml': yaml }),
    );
    expect(config.apiKeys).toEqual([
      {
        id: 'alice',
        hash: sha('alice-secret-key-0001'),
        tenant: 'acme',
        user: 'alice',
        service: false,
      },
      { id: 'backend', hash: sha('backend-secret-key-01'), tenant: 'acme', service: true },
    ]);
    expect(JSON.stringify(config)).not.toContain('alice-secret-key-0001');
    const auth = createAuthenticator(config);
    expect(await auth.authenticate({ 'x-api-key': 'alice-secret-key-0001' })).toMatchObject({
      user: 'alice',
      via: 'api-key',
    });
    expect(
      await auth.authenticate({
        authorization: 'Bearer backend-secret-key-01',
        'x-keel-user': 'u1',
      }),
    ).toMatchObject({ user: 'u1', tenant: 'acme', via: 'service-key' });

    const json = JSON.stringify([{ id: 'svc', hash: sha('k'), service: true }]);
    expect(
      authConfigFromEnv({ KEEL_API_KEYS_FILE: '/keys.json' }, files({ '/keys.json': json }))
        .apiKeys,
    ).toEqual([{ id: 'svc', hash: sha('k'), service: true }]);
  });

  it('refuses bad keys files with the variable, the entry and the fix, never echoing a key', () => {
    const load = (text: string) =>
      authConfigFromEnv({ KEEL_API_KEYS_FILE: '/k' }, files({ '/k': text }));
    expect(() => authConfigFromEnv({ KEEL_API_KEYS_FILE: '/nope' }, files({}))).toThrow(
      /KEEL_API_KEYS_FILE \(\/nope\): cannot be read/,
    );
    expect(() => load('- id: a\n  hash: 123\n  tenant: t')).toThrow(
      /KEEL_API_KEYS_FILE \(\/k\): entry\[0\]\.hash/,
    );
    expect(() => load('- id: a\n  tenant: t')).toThrow(/exactly one of hash or key/);
    expect(() => load(`- id: a\n  key: super-secret-value-123`)).toThrow(/needs a tenant/);
    try {
      load(`- id: a\n  key: super-secret-value-123\n  tenant: t\n  extra: 1`);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toContain('extra');
      expect((error as Error).message).not.toContain('super-secret-value-123');
    }
    expect(() => load('- id: a\n  id: b')).toThrow(
      /KEEL_API_KEYS_FILE \(\/k\):\d+: .* — fix the YAML/,
    );
    expect(() => load('{ "id": "a" }')).toThrow(/must be a list/);
    expect(() =>
      load(
        `- {id: a, hash: ${sha('x')}, service: true}\n- {id: a, hash: ${sha('y')}, service: true}`,
      ),
    ).toThrow(/"a" is used twice/);
  });

  it('KEEL_AUTH=none is development mode; anything else in KEEL_AUTH is refused', () => {
    expect(authConfigFromEnv({ KEEL_AUTH: 'none' })).toEqual({
      dev: { user: 'dev-user', tenant: 'dev' },
    });
    expect(() => authConfigFromEnv({ KEEL_AUTH: 'off' })).toThrow(
      /KEEL_AUTH="off".*KEEL_AUTH=none/,
    );
  });

  it('refuses an environment with no authentication at all', () => {
    expect(() => authConfigFromEnv({})).toThrow(
      /No authentication configured — set KEEL_AUTH_JWKS_URL.*KEEL_API_KEYS_FILE.*KEEL_AUTH=none/,
    );
  });
});
