import { createHash, generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeProtectedHeader, decodeJwt } from 'jose';
import { pino } from 'pino';
import { z } from 'zod';
import { createToolServer, defineTool } from '@keel/tool-sdk';
import type { Caller } from '@keel/tool-sdk';
import type { CallTokenAlgorithm } from '@keel/tool-sdk/contract';
// The verifier a tool server runs is not part of tool-sdk's public API; the tests here check the
// gateway's tokens against exactly that code, and again through a real tool server below.
import { createCallTokenVerifier } from '../../../tool-sdk/src/auth/call-token-verifier.js';
import { GatewayError } from '../errors/gateway-error.js';
import { createKeyRing } from './key-ring.js';
import type { KeyRing } from './key-ring.js';
import { createCallSigner } from './call-signer.js';

const T0 = 1_800_000_000_000;
const enc = (text: string) => new TextEncoder().encode(text);
const bh = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('base64url');
const callBody = (name: string, args: unknown = {}, id = 1) =>
  enc(
    JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }),
  );

function pemOf(algorithm: CallTokenAlgorithm): string {
  const { privateKey } =
    algorithm === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
}

async function ringOf(
  algorithm: CallTokenAlgorithm,
  keys: Array<{ kid: string; pem: string; publishOnly?: boolean }>,
): Promise<KeyRing> {
  return createKeyRing({
    config: {
      algorithm,
      keys: keys.map((k) => ({
        kid: k.kid,
        privateKeyEnv: `KEY_${k.kid}`,
        publishOnly: k.publishOnly ?? false,
      })),
    },
    env: Object.fromEntries(keys.map((k) => [`KEY_${k.kid}`, k.pem])),
  });
}

function counter(prefix: string) {
  let n = 0;
  return () => `${prefix}-${++n}`;
}

describe.each(['EdDSA', 'ES256'] as const)('createCallSigner (%s)', (algorithm) => {
  let ring: KeyRing;
  beforeAll(async () => {
    ring = await ringOf(algorithm, [{ kid: 'k1', pem: pemOf(algorithm) }]);
  });

  const verifierFor = (aud: string, now = () => T0) =>
    createCallTokenVerifier(
      { issuer: 'keel-gateway', audience: aud, algorithm, publicKey: ring.jwks().keys[0]! },
      now,
    );

  it('mints a token the tool-sdk verifier accepts, with exactly the contract claims', async () => {
    const signer = createCallSigner({
      keyRing: ring,
      issuer: 'keel-gateway',
      now: () => T0 + 999,
      newId: counter('jti'),
    });
    const body = callBody('get_order', { id: 'o1' });
    const token = await signer.sign({
      aud: 'orders',
      sub: 'user-42',
      tnt: 'acme',
      sid: 'sess-1',
      mth: 'tools/call',
      tool: 'get_order',
      idk: 'idem-1',
      body,
    });
    expect(decodeProtectedHeader(token)).toEqual({
      alg: algorithm,
      kid: 'k1',
      typ: 'keel-call+jwt',
    });
    const verified = await (await verifierFor('orders'))(token, bh(body));
    const iat = Math.floor(T0 / 1000);
    expect(verified).toEqual({
      iss: 'keel-gateway',
      aud: 'orders',
      sub: 'user-42',
      tnt: 'acme',
      sid: 'sess-1',
      iat,
      exp: iat + 60,
      jti: 'jti-1',
      mth: 'tools/call',
      tool: 'get_order',
      bh: bh(body),
      idk: 'idem-1',
    });
  });

  it('leaves out claims it was not given (gateway’s own requests: no tool, no tenant)', async () => {
    const signer = createCallSigner({ keyRing: ring, issuer: 'keel-gateway', now: () => T0 });
    const body = enc('{"jsonrpc":"2.0","id":1,"method":"tools/list"}');
    const token = await signer.sign({
      aud: 'orders',
      sub: 'keel-gateway',
      mth: 'tools/list',
      body,
    });
    const claims = await (await verifierFor('orders'))(token, bh(body));
    expect(Object.keys(claims).sort()).toEqual([
      'aud',
      'bh',
      'exp',
      'iat',
      'iss',
      'jti',
      'mth',
      'sub',
    ]);
  });

  it('jti is unique per call by default', async () => {
    const signer = createCallSigner({ keyRing: ring, issuer: 'keel-gateway' });
    const body = callBody('x');
    const jtis = new Set<string>();
    for (let i = 0; i < 500; i++) {
      jtis.add(
        decodeJwt(await signer.sign({ aud: 'a', sub: 's', mth: 'tools/call', tool: 'x', body }))
          .jti!,
      );
    }
    expect(jtis.size).toBe(500);
  });

  it('S06 body changed after signing is rejected by the verifier', async () => {
    const signer = createCallSigner({ keyRing: ring, issuer: 'keel-gateway', now: () => T0 });
    const token = await signer.sign({
      aud: 'orders',
      sub: 'u',
      mth: 'tools/call',
      tool: 'refund',
      body: callBody('refund', { amount: 1 }),
    });
    await expect(
      (await verifierFor('orders'))(token, bh(callBody('refund', { amount: 1000 }))),
    ).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });

  it('S04 a token for server B is rejected by server A; a wrong issuer is rejected', async () => {
    const body = callBody('x');
    const signer = createCallSigner({ keyRing: ring, issuer: 'keel-gateway', now: () => T0 });
    const forB = await signer.sign({
      aud: 'server-b',
      sub: 'u',
      mth: 'tools/call',
      tool: 'x',
      body,
    });
    await expect((await verifierFor('server-a'))(forB, bh(body))).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
    const otherIssuer = createCallSigner({ keyRing: ring, issuer: 'evil-gateway', now: () => T0 });
    const token = await otherIssuer.sign({
      aud: 'server-a',
      sub: 'u',
      mth: 'tools/call',
      tool: 'x',
      body,
    });
    await expect((await verifierFor('server-a'))(token, bh(body))).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });

  it('S03 lives 60 s: accepted up to exp + 5 s skew, rejected after', async () => {
    const signer = createCallSigner({ keyRing: ring, issuer: 'keel-gateway', now: () => T0 });
    const body = callBody('x');
    const token = await signer.sign({
      aud: 'orders',
      sub: 'u',
      mth: 'tools/call',
      tool: 'x',
      body,
    });
    const iatMs = Math.floor(T0 / 1000) * 1000;
    await expect(
      (await verifierFor('orders', () => iatMs + 64_000))(token, bh(body)),
    ).resolves.toBeDefined();
    await expect(
      (await verifierFor('orders', () => iatMs + 66_000))(token, bh(body)),
    ).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });

  it('S02 a foreign key reusing the published kid is rejected', async () => {
    const foreign = await ringOf(algorithm, [{ kid: 'k1', pem: pemOf(algorithm) }]);
    const body = callBody('x');
    const token = await createCallSigner({
      keyRing: foreign,
      issuer: 'keel-gateway',
      now: () => T0,
    }).sign({
      aud: 'orders',
      sub: 'u',
      mth: 'tools/call',
      tool: 'x',
      body,
    });
    expect(decodeProtectedHeader(token).kid).toBe('k1');
    await expect((await verifierFor('orders'))(token, bh(body))).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });
});

describe('createCallSigner checks', () => {
  it('refuses a lifetime over 60 s and a token without sub', async () => {
    const ring = await createKeyRing({ config: { algorithm: 'EdDSA', keys: [] } });
    expect(() => createCallSigner({ keyRing: ring, issuer: 'i', lifetimeS: 61 })).toThrow(
      GatewayError,
    );
    const signer = createCallSigner({ keyRing: ring, issuer: 'i' });
    await expect(
      signer.sign({ aud: 'a', sub: '', mth: 'ping', body: enc('{}') }),
    ).rejects.toMatchObject({
      code: 'INTERNAL',
    });
  });

  it('an ES256 signature is the 64-byte JWS form (r||s), not DER', async () => {
    const ring = await createKeyRing({ config: { algorithm: 'ES256', keys: [] } });
    const token = await createCallSigner({ keyRing: ring, issuer: 'i' }).sign({
      aud: 'a',
      sub: 's',
      mth: 'ping',
      body: enc('{}'),
    });
    expect(Buffer.from(token.split('.')[2]!, 'base64url')).toHaveLength(64);
  });
});

describe('through a real tool server fetching the gateway JWKS over HTTP (rotation)', () => {
  const silent = pino({ level: 'silent' });
  let jwksServer: Server;
  let jwksUrl: string;
  let served: KeyRing;
  const seen: Caller[] = [];
  const oldPem = pemOf('EdDSA');
  const newPem = pemOf('EdDSA');

  beforeAll(async () => {
    jwksServer = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(served.jwks()));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as { port: number }).port}/.well-known/jwks.json`;
  });
  afterAll(async () => {
    jwksServer.closeAllConnections();
    await new Promise<void>((resolve) => jwksServer.close(() => resolve()));
  });

  // A fresh tool server per phase: its JWKS cache starts empty, as after a deploy.
  function toolServer() {
    return createToolServer({
      id: 'orders',
      logger: silent,
      auth: { issuer: 'keel-gateway', jwksUrl },
      tools: [
        defineTool({
          name: 'get_order',
          description: 'Look up an order',
          input: z.object({ id: z.string() }),
          output: z.object({ id: z.string() }),
          handler: async ({ id }, ctx) => {
            if (ctx.caller) seen.push(ctx.caller);
            return { id };
          },
        }),
      ],
    });
  }

  async function call(server: ReturnType<typeof toolServer>, ring: KeyRing, id: string) {
    const body = callBody('get_order', { id });
    const token = await createCallSigner({ keyRing: ring, issuer: 'keel-gateway' }).sign({
      aud: 'orders',
      sub: `user-${id}`,
      mth: 'tools/call',
      tool: 'get_order',
      body,
    });
    const response = await server.fetch(
      new Request('http://localhost/mcp', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${token}`,
        },
        body,
      }),
    );
    return { status: response.status, text: await response.text() };
  }

  it('old kid stays trusted while published; the new key signs; removal ends the overlap', async () => {
    const before = await ringOf('EdDSA', [{ kid: 'old', pem: oldPem }]);
    const overlap = await ringOf('EdDSA', [
      { kid: 'new', pem: newPem },
      { kid: 'old', pem: oldPem, publishOnly: true },
    ]);
    const after = await ringOf('EdDSA', [{ kid: 'new', pem: newPem }]);

    served = before;
    const phase1 = toolServer();
    expect((await call(phase1, before, 'a')).status).toBe(200);
    expect(seen.at(-1)).toMatchObject({ sub: 'user-a', iss: 'keel-gateway' });

    served = overlap;
    const phase2 = toolServer();
    expect(overlap.signingKey.kid).toBe('new');
    expect((await call(phase2, overlap, 'b')).status).toBe(200);
    // A replica still on the old config (or a token minted just before) still verifies.
    expect((await call(phase2, before, 'c')).status).toBe(200);
    expect(seen.map((c) => c.sub)).toEqual(['user-a', 'user-b', 'user-c']);

    served = after;
    const phase3 = toolServer();
    expect((await call(phase3, after, 'd')).status).toBe(200);
    const stale = await call(phase3, before, 'e');
    expect(stale.status).toBe(401);
    expect(seen.map((c) => c.sub)).toEqual(['user-a', 'user-b', 'user-c', 'user-d']);
    await Promise.all([phase1, phase2, phase3].map((s) => s.close({ graceMs: 0 })));
  });
});
