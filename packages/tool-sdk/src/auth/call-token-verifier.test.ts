import { describe, expect, it } from 'vitest';
import { SignJWT, exportSPKI, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import { generateKeyPairSync, sign } from 'node:crypto';
import { CALL_TOKEN_TYPE } from '../contract/index.js';
import { ToolSdkError } from '../errors/tool-sdk-error.js';
import { hashBody } from '../http/body.js';
import { createTestSigner } from '../test-kit/index.js';
import type { TestSigner } from '../test-kit/index.js';
import { createCallTokenVerifier } from './call-token-verifier.js';

const NOW_MS = 1_800_000_000_000;
const now = () => NOW_MS;
const nowS = NOW_MS / 1000;
const body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}';
const bh = hashBody(Buffer.from(body));

async function setup(algorithm: 'EdDSA' | 'ES256' = 'EdDSA') {
  const signer = await createTestSigner({ algorithm, now });
  const verify = await createCallTokenVerifier({ ...signer.auth, audience: 'orders' }, now);
  return { signer, verify };
}

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(ToolSdkError.isInstance(error)).toBe(true);
    expect((error as ToolSdkError).code).toBe('UNAUTHENTICATED');
    return ((error as ToolSdkError).details as { reason: string }).reason;
  }
  throw new Error('accepted');
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Flip one base64url character of a segment (0 header, 1 payload, 2 signature). */
function tamper(token: string, segment: number): string {
  const parts = token.split('.');
  const s = parts[segment]!;
  const i = Math.floor(s.length / 2);
  parts[segment] = s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  return parts.join('.');
}

describe('call-token verifier (node:crypto fast path)', () => {
  it('accepts a good EdDSA token and returns its claims', async () => {
    const { signer, verify } = await setup();
    const claims = await verify(await signer.sign(body, { aud: 'orders', tnt: 't1' }), bh);
    expect(claims).toMatchObject({ iss: 'keel-gateway', aud: 'orders', tool: 'echo', tnt: 't1' });
  });

  it('accepts a good ES256 token, from a JWK and from an SPKI PEM', async () => {
    const { signer, verify } = await setup('ES256');
    expect((await verify(await signer.sign(body, { aud: 'orders' }), bh)).aud).toBe('orders');
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const pem = await exportSPKI(publicKey);
    const fromPem = await createCallTokenVerifier(
      { issuer: 'keel-gateway', audience: 'orders', algorithm: 'ES256', publicKey: pem },
      now,
    );
    const token = await new SignJWT({
      iss: 'keel-gateway',
      aud: 'orders',
      sub: 'u',
      iat: nowS,
      exp: nowS + 60,
      jti: 'j1',
      mth: 'tools/call',
      tool: 'echo',
      bh,
    })
      .setProtectedHeader({ alg: 'ES256', typ: CALL_TOKEN_TYPE })
      .sign(privateKey);
    expect((await fromPem(token, bh)).jti).toBe('j1');
  });

  it('rejects a tampered signature, header or payload', async () => {
    const { signer, verify } = await setup();
    const token = await signer.sign(body, { aud: 'orders' });
    expect(await reason(verify(tamper(token, 2), bh))).toBe('signature or claims rejected');
    expect(await reason(verify(tamper(token, 1), bh))).toMatch(/rejected|malformed/);
    expect(await reason(verify(tamper(token, 0), bh))).toMatch(/malformed|typ|alg/);
    // The signature of one token on the claims of another.
    const other = await signer.sign(body, { aud: 'orders', sub: 'admin' });
    const spliced = [...other.split('.').slice(0, 2), token.split('.')[2]].join('.');
    expect(await reason(verify(spliced, bh))).toBe('signature or claims rejected');
    // Truncated, extended and re-padded signatures.
    expect(await reason(verify(token.slice(0, -2), bh))).toBe('signature or claims rejected');
    expect(await reason(verify(`${token}AA`, bh))).toBe('signature or claims rejected');
    expect(await reason(verify(`${token}=`, bh))).toBe('malformed token');
  });

  it('rejects a token signed with another key, ES256 included', async () => {
    const { verify } = await setup();
    const foreign = await createTestSigner({ now });
    expect(await reason(verify(await foreign.sign(body, { aud: 'orders' }), bh))).toBe(
      'signature or claims rejected',
    );
    const es = await setup('ES256');
    const foreignEs = await createTestSigner({ algorithm: 'ES256', now });
    expect(await reason(es.verify(await foreignEs.sign(body, { aud: 'orders' }), bh))).toBe(
      'signature or claims rejected',
    );
    // An ES256 token to an EdDSA verifier: pinned algorithm.
    expect(await reason(verify(await foreignEs.sign(body, { aud: 'orders' }), bh))).toBe(
      'algorithm not accepted',
    );
  });

  it('refuses a static key that does not fit the pinned algorithm', async () => {
    const es = await createTestSigner({ algorithm: 'ES256' });
    await expect(
      createCallTokenVerifier(
        { issuer: 'i', audience: 'a', algorithm: 'EdDSA', publicKey: es.publicJwk },
        now,
      ),
    ).rejects.toThrow();
  });

  it('refuses alg none, wrong typ, unknown or dangerous header parameters and a non-string kid', async () => {
    const { signer, verify } = await setup();
    const good = await signer.sign(body, { aud: 'orders' });
    const [, payload, signature] = good.split('.');
    const withHeader = (header: Record<string, unknown>) =>
      `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${payload}.${signature}`;
    expect(await reason(verify(withHeader({ alg: 'none', typ: CALL_TOKEN_TYPE }), bh))).toBe(
      'algorithm not accepted',
    );
    expect(await reason(verify(`${good.split('.').slice(0, 2).join('.')}.`, bh))).toBe(
      'malformed token',
    );
    expect(
      await reason(verify(await signer.sign(body, { aud: 'orders' }, { typ: 'JWT' }), bh)),
    ).toBe('wrong typ');
    // Signed correctly (node:crypto; jose will not sign some of these headers): refused anyway.
    const keys = generateKeyPairSync('ed25519');
    const raw = await createCallTokenVerifier(
      {
        issuer: 'keel-gateway',
        audience: 'orders',
        publicKey: keys.publicKey.export({ format: 'jwk' }) as JWK,
      },
      now,
    );
    const claims = {
      iss: 'keel-gateway',
      aud: 'orders',
      sub: 'u',
      iat: nowS,
      exp: nowS + 60,
      jti: 'j',
      mth: 'tools/call',
      tool: 'echo',
      bh,
    };
    const signRaw = (header: Record<string, unknown>) => {
      const input = `${b64(header)}.${b64(claims)}`;
      return `${input}.${sign(null, Buffer.from(input), keys.privateKey).toString('base64url')}`;
    };
    expect((await raw(signRaw({ alg: 'EdDSA', typ: CALL_TOKEN_TYPE }), bh)).jti).toBe('j');
    for (const param of ['jku', 'jwk', 'x5u', 'x5c', 'crit', 'b64', 'zip']) {
      const value = param === 'crit' ? ['b64'] : param === 'b64' ? false : 'x';
      expect(
        await reason(raw(signRaw({ alg: 'EdDSA', typ: CALL_TOKEN_TYPE, [param]: value }), bh)),
      ).toBe(`header parameter ${param} not accepted`);
    }
    expect(await reason(verify(await signer.sign(body, { aud: 'orders' }, { kid: 7 }), bh))).toBe(
      'malformed token',
    );
  });

  it('checks iss, aud, lifetime, skew, nbf, required and typed claims and the body hash', async () => {
    const { signer, verify } = await setup();
    const r = async (claims: Record<string, unknown>, hash = bh) =>
      reason(verify(await signer.sign(body, { aud: 'orders', ...claims }), hash));
    expect(await r({ iss: 'evil' })).toBe('wrong issuer');
    expect(await r({ aud: 'billing' })).toBe('wrong audience');
    expect(await r({ aud: ['orders'] })).toBe('missing aud');
    expect(await r({ iat: nowS - 65, exp: nowS - 5 })).toBe('expired');
    expect(await r({ iat: nowS, exp: nowS + 61 })).toBe('lifetime too long');
    expect(await r({ iat: nowS + 6, exp: nowS + 60 })).toBe('issued in the future');
    expect(await r({ nbf: nowS + 6 })).toBe('not yet valid');
    expect(await r({ nbf: 'soon' })).toBe('malformed nbf');
    expect(await r({ exp: '9999999999' })).toBe('missing exp');
    expect(await r({ jti: undefined })).toBe('missing jti');
    expect(await r({ mth: '' })).toBe('missing mth');
    expect(await r({ tool: 5 })).toBe('malformed tool');
    expect(await r({ tnt: { id: 1 } })).toBe('malformed tnt');
    expect(await r({}, hashBody(Buffer.from(`${body} `)))).toBe('body hash mismatch');
    // Inside the skew: accepted.
    await expect(
      verify(await signer.sign(body, { aud: 'orders', iat: nowS - 64, exp: nowS - 4 }), bh),
    ).resolves.toMatchObject({ aud: 'orders' });
    await expect(
      verify(
        await signer.sign(body, { aud: 'orders', iat: nowS + 5, exp: nowS + 60, nbf: nowS + 5 }),
        bh,
      ),
    ).resolves.toMatchObject({ aud: 'orders' });
  });

  it('refuses a payload that is not a JSON object even when correctly signed', async () => {
    const signer: TestSigner = await createTestSigner({ now });
    const verify = await createCallTokenVerifier({ ...signer.auth, audience: 'orders' }, now);
    const { privateKey } = await generateKeyPair('EdDSA');
    // jose refuses to sign a non-object payload, so build one: header.payload with a real key.
    const header = Buffer.from(
      JSON.stringify({ alg: 'EdDSA', typ: CALL_TOKEN_TYPE, kid: 'test-key' }),
    ).toString('base64url');
    const payload = Buffer.from('[1,2]').toString('base64url');
    const { KeyObject } = await import('node:crypto');
    const sig = sign(null, Buffer.from(`${header}.${payload}`), KeyObject.from(privateKey));
    // Signed by an unknown key and not an object: refused either way, never a crash.
    expect(await reason(verify(`${header}.${payload}.${sig.toString('base64url')}`, bh))).toBe(
      'signature or claims rejected',
    );
  });
});
