import { createHash, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import type { CryptoKey, JWTPayload } from 'jose';
import { AuthError } from './auth-error.js';
import { createAuthenticator } from './create-authenticator.js';
import type { AuthConfig } from './create-authenticator.js';
import type { Authenticator } from './principal.js';

const sha = (key: string) => createHash('sha256').update(key).digest('hex');
const USER_KEY = `user-${randomUUID()}`;
const SERVICE_KEY = `svc-${randomUUID()}`;
const TENANTLESS_SERVICE_KEY = `svc2-${randomUUID()}`;
const ISSUER = 'https://idp.test/';
const AUDIENCE = 'keel-orchestrator';

const apiKeys: AuthConfig['apiKeys'] = [
  { id: 'alice-key', hash: sha(USER_KEY), tenant: 'acme', user: 'alice', service: false },
  { id: 'backend', hash: sha(SERVICE_KEY), tenant: 'acme', service: true },
  { id: 'multi', hash: sha(TENANTLESS_SERVICE_KEY), service: true },
];

function warnings() {
  const lines: Array<{ obj: unknown; msg: string }> = [];
  return { lines, logger: { warn: (obj: unknown, msg: string) => void lines.push({ obj, msg }) } };
}

async function rejection(promise: Promise<unknown>): Promise<AuthError> {
  try {
    await promise;
  } catch (error) {
    if (AuthError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected an AuthError');
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('createAuthenticator — JWT via a real loopback JWKS', () => {
  let server: Server;
  let jwksUrl: string;
  let jwksHits = 0;
  let es256: CryptoKey;
  let rs256: CryptoKey;
  let stranger: CryptoKey;
  let auth: Authenticator;
  let jwksUp = true;

  beforeAll(async () => {
    const es = await generateKeyPair('ES256');
    const rs = await generateKeyPair('RS256');
    es256 = es.privateKey;
    rs256 = rs.privateKey;
    stranger = (await generateKeyPair('ES256')).privateKey;
    const keys = [
      { ...(await exportJWK(es.publicKey)), kid: 'es-1', alg: 'ES256', use: 'sig' },
      { ...(await exportJWK(rs.publicKey)), kid: 'rs-1', alg: 'RS256', use: 'sig' },
    ];
    server = createServer((req, res) => {
      jwksHits++;
      if (!jwksUp) {
        res.statusCode = 503;
        res.end();
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    jwksUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks.json`;
    auth = createAuthenticator({
      jwt: { jwksUrl, issuer: ISSUER, audience: AUDIENCE },
      apiKeys,
    });
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  function token(
    claims: JWTPayload,
    options: {
      key?: CryptoKey;
      alg?: string;
      kid?: string;
      iss?: string;
      aud?: string;
      exp?: string | number;
    } = {},
  ) {
    const alg = options.alg ?? 'ES256';
    return new SignJWT({ sub: 'user-1', tnt: 'acme', ...claims })
      .setProtectedHeader({ alg, kid: options.kid ?? (alg === 'RS256' ? 'rs-1' : 'es-1') })
      .setIssuer(options.iss ?? ISSUER)
      .setAudience(options.aud ?? AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(options.exp ?? '5m')
      .sign(options.key ?? (alg === 'RS256' ? rs256 : es256));
  }

  const bearer = (value: string) => ({ authorization: `Bearer ${value}` });

  it('accepts a valid ES256 and RS256 token: sub is the user, tnt the tenant', async () => {
    expect(await auth.authenticate(bearer(await token({})))).toEqual({
      user: 'user-1',
      tenant: 'acme',
      via: 'jwt',
    });
    const rs = await auth.authenticate(bearer(await token({ sub: 'u2' }, { alg: 'RS256' })));
    expect(rs).toMatchObject({ user: 'u2', tenant: 'acme', via: 'jwt' });
  });

  it('caches the key set rather than fetching it for every request', async () => {
    const before = jwksHits;
    for (let i = 0; i < 5; i++) await auth.authenticate(bearer(await token({})));
    expect(jwksHits).toBe(before);
  });

  it('rejects a wrong issuer, a wrong audience and an expired token with 401', async () => {
    const wrongIss = await rejection(
      auth.authenticate(bearer(await token({}, { iss: 'https://evil.test/' }))),
    );
    expect(wrongIss).toMatchObject({ code: 'UNAUTHENTICATED', status: 401 });
    expect(wrongIss.message).toContain('"iss"');
    const wrongAud = await rejection(
      auth.authenticate(bearer(await token({}, { aud: 'someone-else' }))),
    );
    expect(wrongAud.message).toContain('"aud"');
    const expired = await rejection(
      auth.authenticate(bearer(await token({}, { exp: Math.floor(Date.now() / 1000) - 60 }))),
    );
    expect(expired).toMatchObject({
      code: 'UNAUTHENTICATED',
      status: 401,
      message: 'Token expired',
    });
    expect(expired.keel).toMatchObject({ code: 'UNAUTHENTICATED', retryable: false });
    expect(expired.keel.correlationId).not.toBe('');
  });

  it('honours the clock tolerance: expired 3 s ago passes, 30 s ago does not', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expect(
      auth.authenticate(bearer(await token({}, { exp: now - 3 }))),
    ).resolves.toBeTruthy();
    await expect(auth.authenticate(bearer(await token({}, { exp: now - 30 })))).rejects.toThrow(
      'Token expired',
    );
  });

  it('rejects alg none, a foreign signature, and a tampered payload', async () => {
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({
      sub: 'root',
      tnt: 'acme',
      iss: ISSUER,
      aud: AUDIENCE,
      iat: now,
      exp: now + 300,
    })}.`;
    const none = await rejection(auth.authenticate(bearer(unsigned)));
    expect(none).toMatchObject({ code: 'UNAUTHENTICATED', status: 401 });
    // The same, but with a signature segment, so it cannot slip through the API-key path either.
    await expect(auth.authenticate(bearer(`${unsigned}AAAA`))).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });

    const foreign = await rejection(auth.authenticate(bearer(await token({}, { key: stranger }))));
    expect(foreign.message).toBe('Token signature is invalid');

    const [h, , s] = (await token({})).split('.');
    const tampered = `${h}.${b64url({ sub: 'root', tnt: 'acme', iss: ISSUER, aud: AUDIENCE, exp: now + 300 })}.${s}`;
    await expect(auth.authenticate(bearer(tampered))).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });

  it('rejects an algorithm outside the configured list even when the key set has the key', async () => {
    const esOnly = createAuthenticator({
      jwt: { jwksUrl, issuer: ISSUER, audience: AUDIENCE, algorithms: ['ES256'] },
    });
    const error = await rejection(esOnly.authenticate(bearer(await token({}, { alg: 'RS256' }))));
    expect(error.message).toBe('Token signing algorithm is not accepted');
  });

  it('needs the tenant claim, and reads a configured claim name', async () => {
    const missing = await rejection(auth.authenticate(bearer(await token({ tnt: undefined }))));
    expect(missing).toMatchObject({ code: 'UNAUTHENTICATED', status: 401 });
    expect(missing.message).toContain('no "tnt" claim');

    const custom = createAuthenticator({
      jwt: { jwksUrl, issuer: ISSUER, audience: AUDIENCE, tenantClaim: 'org_id' },
    });
    expect(await custom.authenticate(bearer(await token({ org_id: 'globex' })))).toMatchObject({
      tenant: 'globex',
    });
    await expect(custom.authenticate(bearer(await token({})))).rejects.toThrow('no "org_id" claim');
    await expect(custom.authenticate(bearer(await token({ org_id: 'x\u0000y' })))).rejects.toThrow(
      '"org_id" must be a string',
    );
  });

  it('a JWT user may not name another user with X-Keel-User (403)', async () => {
    const error = await rejection(
      auth.authenticate({ ...bearer(await token({})), 'x-keel-user': 'bob' }),
    );
    expect(error).toMatchObject({ code: 'FORBIDDEN', status: 403 });
  });

  it('API keys still work next to JWT', async () => {
    expect(await auth.authenticate(bearer(USER_KEY))).toMatchObject({
      via: 'api-key',
      user: 'alice',
    });
  });

  it('an unreachable key set is 503 UNAVAILABLE (retryable), not a bad token', async () => {
    const fresh = createAuthenticator({ jwt: { jwksUrl, issuer: ISSUER, audience: AUDIENCE } });
    jwksUp = false;
    try {
      const error = await rejection(fresh.authenticate(bearer(await token({}))));
      expect(error).toMatchObject({ code: 'UNAVAILABLE', status: 503, retryable: true });
    } finally {
      jwksUp = true;
    }
  });

  it('verifies against a static SPKI public key', async () => {
    const pair = await generateKeyPair('EdDSA', { extractable: true });
    const pem = await exportSPKI(pair.publicKey);
    const staticAuth = createAuthenticator({
      jwt: { publicKeyPem: pem, issuer: ISSUER, audience: AUDIENCE },
    });
    const good = await token({ sub: 'ed' }, { key: pair.privateKey, alg: 'EdDSA' });
    expect(await staticAuth.authenticate(bearer(good))).toMatchObject({ user: 'ed', via: 'jwt' });
    await expect(staticAuth.authenticate(bearer(await token({})))).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });
});

describe('createAuthenticator — API keys', () => {
  const auth = createAuthenticator({ apiKeys });

  it('a user key is its own user and tenant, by Bearer or X-API-Key', async () => {
    const expected = { user: 'alice', tenant: 'acme', via: 'api-key', keyId: 'alice-key' };
    expect(await auth.authenticate({ authorization: `Bearer ${USER_KEY}` })).toEqual(expected);
    expect(await auth.authenticate({ 'x-api-key': USER_KEY })).toEqual(expected);
    expect(await auth.authenticate({ Authorization: `bearer ${USER_KEY}` })).toEqual(expected);
  });

  it('refuses an unknown key, missing credentials, and malformed headers with 401', async () => {
    const bad = await rejection(auth.authenticate({ authorization: `Bearer ${USER_KEY}x` }));
    expect(bad).toMatchObject({
      code: 'UNAUTHENTICATED',
      status: 401,
      message: 'Invalid credentials',
    });
    expect(JSON.stringify(bad.keel)).not.toContain(USER_KEY);
    await expect(auth.authenticate({})).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(auth.authenticate({ authorization: `Basic ${USER_KEY}` })).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
    await expect(
      auth.authenticate({ authorization: `Bearer ${USER_KEY}`, 'x-api-key': USER_KEY }),
    ).rejects.toThrow('either Authorization or X-API-Key');
    await expect(auth.authenticate({ 'x-api-key': [USER_KEY, USER_KEY] })).rejects.toThrow(
      'only once',
    );
  });

  it('a JWT-looking bearer without a configured IdP says JWTs are not accepted', async () => {
    await expect(auth.authenticate({ authorization: 'Bearer aaa.bbb.ccc' })).rejects.toThrow(
      'JWTs are not accepted',
    );
  });

  it('a non-service key sending X-Keel-User or X-Keel-Tenant is refused with 403', async () => {
    const asBob = await rejection(
      auth.authenticate({ authorization: `Bearer ${USER_KEY}`, 'x-keel-user': 'bob' }),
    );
    expect(asBob).toMatchObject({ code: 'FORBIDDEN', status: 403 });
    expect(asBob.message).toContain('service key');
    await expect(
      auth.authenticate({ 'x-api-key': USER_KEY, 'x-keel-tenant': 'globex' }),
    ).rejects.toMatchObject({ code: 'FORBIDDEN', status: 403 });
  });

  it('a service key acts for the user it names, tenant from the header or the key', async () => {
    expect(
      await auth.authenticate({ authorization: `Bearer ${SERVICE_KEY}`, 'x-keel-user': 'u-9' }),
    ).toEqual({ user: 'u-9', tenant: 'acme', via: 'service-key', keyId: 'backend' });
    expect(
      await auth.authenticate({
        'x-api-key': SERVICE_KEY,
        'x-keel-user': 'u-9',
        'x-keel-tenant': 'globex',
      }),
    ).toMatchObject({ user: 'u-9', tenant: 'globex', via: 'service-key' });
  });

  it('a service key without X-Keel-User is refused; a tenantless one needs X-Keel-Tenant', async () => {
    const noUser = await rejection(auth.authenticate({ authorization: `Bearer ${SERVICE_KEY}` }));
    expect(noUser).toMatchObject({ code: 'UNAUTHENTICATED', status: 401 });
    expect(noUser.message).toContain('X-Keel-User');
    await expect(
      auth.authenticate({ authorization: `Bearer ${TENANTLESS_SERVICE_KEY}`, 'x-keel-user': 'u' }),
    ).rejects.toThrow('X-Keel-Tenant');
    expect(
      await auth.authenticate({
        authorization: `Bearer ${TENANTLESS_SERVICE_KEY}`,
        'x-keel-user': 'u',
        'x-keel-tenant': 't',
      }),
    ).toMatchObject({ user: 'u', tenant: 't', keyId: 'multi' });
  });

  it('validates X-Keel-User / X-Keel-Tenant: 1-128 characters, no control characters', async () => {
    const send = (user: string) =>
      auth.authenticate({ authorization: `Bearer ${SERVICE_KEY}`, 'x-keel-user': user });
    await expect(send('a'.repeat(128))).resolves.toMatchObject({ user: 'a'.repeat(128) });
    await expect(send('a'.repeat(129))).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(send('')).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(send('bob\r\nx-admin: 1')).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(send('bob\u007f')).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(
      auth.authenticate({
        authorization: `Bearer ${SERVICE_KEY}`,
        'x-keel-user': 'u',
        'x-keel-tenant': 'a\tb',
      }),
    ).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('refuses unusable key configs at creation', () => {
    expect(() => createAuthenticator({})).toThrow('no authentication configured');
    expect(() =>
      createAuthenticator({ apiKeys: [{ id: 'k', hash: 'abc', tenant: 't', service: false }] }),
    ).toThrow('SHA-256 hex');
    expect(() =>
      createAuthenticator({ apiKeys: [{ id: 'k', hash: sha('x'), service: false }] }),
    ).toThrow('needs a tenant');
    expect(() =>
      createAuthenticator({
        apiKeys: [
          { id: 'a', hash: sha('x'), service: true },
          { id: 'b', hash: sha('x'), service: true },
        ],
      }),
    ).toThrow('the same key as "a"');
  });
});

describe('createAuthenticator — development mode', () => {
  it('warns loudly once at creation and accepts requests without credentials as dev', async () => {
    const { lines, logger } = warnings();
    const auth = createAuthenticator({ dev: { user: 'dev-user', tenant: 'dev' } }, { logger });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.msg).toContain('DEVELOPMENT MODE');
    expect(await auth.authenticate({})).toEqual({ user: 'dev-user', tenant: 'dev', via: 'dev' });
    expect(await auth.authenticate({ 'x-keel-user': 'carol' })).toEqual({
      user: 'carol',
      tenant: 'dev',
      via: 'dev',
    });
    // Without other methods configured, presented credentials are ignored.
    expect(await auth.authenticate({ authorization: 'Bearer whatever' })).toMatchObject({
      via: 'dev',
    });
    expect(lines).toHaveLength(1);
    await expect(auth.authenticate({ 'x-keel-user': 'x\u0000' })).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });

  it('is off unless configured: no dev principal without the dev config', async () => {
    const { lines, logger } = warnings();
    const auth = createAuthenticator({ apiKeys }, { logger });
    expect(lines).toHaveLength(0);
    await expect(auth.authenticate({ 'x-keel-user': 'carol' })).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });

  it('with keys configured too, a presented key is still checked', async () => {
    const auth = createAuthenticator({ apiKeys, dev: { user: 'dev-user', tenant: 'dev' } });
    expect(await auth.authenticate({})).toMatchObject({ via: 'dev' });
    expect(await auth.authenticate({ 'x-api-key': USER_KEY })).toMatchObject({ via: 'api-key' });
    await expect(auth.authenticate({ 'x-api-key': 'typo' })).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });
});
