import { afterAll, describe, expect, it, vi } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { pino } from 'pino';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from '../http/tool-server.js';
import { createTestSigner } from '../test-kit/index.js';
import type { TestSigner } from '../test-kit/index.js';

// A real JWKS endpoint on loopback whose key set the test can rotate.
let keys: TestSigner[] = [];
let fetches = 0;
const jwks = createServer((_req, res) => {
  fetches++;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ keys: keys.map((k, i) => ({ ...k.publicJwk, kid: `k${i}` })) }));
}).listen(0, '127.0.0.1');
afterAll(() => jwks.close());

describe('JWKS URL', () => {
  it('verifies against the JWKS, caches it, and refetches at most once a minute on an unknown kid', async () => {
    await new Promise((r) => (jwks.listening ? r(null) : jwks.once('listening', r)));
    const first = await createTestSigner();
    const second = await createTestSigner();
    keys = [first];
    const spy = vi.fn();
    const tool = defineTool({
      name: 't',
      description: 'd',
      input: z.object({}),
      handler: () => (spy(), 'ok'),
    });
    const server = createToolServer({
      id: 'jwks',
      tools: [tool],
      logger: pino({ level: 'silent' }),
      env: {
        KEEL_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`,
        KEEL_ISSUER: first.issuer,
      },
    });
    const call = async (signer: TestSigner, kid: string) => {
      const body = JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 't', arguments: {} },
      });
      const token = await signer.sign(body, { aud: 'jwks' }, { kid });
      return (
        await server.fetch(
          new Request('http://localhost/mcp', {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body,
          }),
        )
      ).status;
    };
    expect(await call(first, 'k0')).toBe(200);
    expect(await call(first, 'k0')).toBe(200);
    expect(fetches).toBe(1);
    // A key rotated in moments after the last fetch: within the one-minute cooldown the JWKS is
    // not refetched, so the unknown kid is refused rather than fetched on every request.
    keys = [first, second];
    expect(await call(second, 'k1')).toBe(401);
    expect(spy).toHaveBeenCalledTimes(2);
    expect(fetches).toBeLessThanOrEqual(2);
    // Unknown kids do not make the server hammer the JWKS endpoint.
    for (let i = 0; i < 5; i++) expect(await call(second, `nope${i}`)).toBe(401);
    expect(fetches).toBeLessThanOrEqual(2);
    await server.close();
  });
});

describe('JWKS key rotation', () => {
  it('S02 a new kid published after the first fetch is 401 (no fetch) inside the 60 s cooldown and accepted once it has passed', async () => {
    // jose's JWKS cache reads the global clock (Date.now), so the clock is faked there; timers
    // and sockets stay real.
    vi.useFakeTimers({ toFake: ['Date'] });
    const rotating: { signer: TestSigner; kid: string }[] = [];
    let served = 0;
    const endpoint = createServer((_req, res) => {
      served++;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({ keys: rotating.map((k) => ({ ...k.signer.publicJwk, kid: k.kid })) }),
      );
    });
    await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
    try {
      const old = await createTestSigner();
      const next = await createTestSigner();
      rotating.push({ signer: old, kid: 'old' });
      const spy = vi.fn();
      const tool = defineTool({
        name: 't',
        description: 'd',
        input: z.object({}),
        handler: () => (spy(), 'ok'),
      });
      const server = createToolServer({
        id: 'jwks-rotate',
        tools: [tool],
        logger: pino({ level: 'silent' }),
        auth: {
          issuer: old.issuer,
          jwksUrl: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/jwks.json`,
        },
      });
      const call = async (signer: TestSigner, kid: string) => {
        const body = JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 't', arguments: {} },
        });
        const token = await signer.sign(body, { aud: 'jwks-rotate' }, { kid });
        const response = await server.fetch(
          new Request('http://localhost/mcp', {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body,
          }),
        );
        return response.status;
      };

      expect(await call(old, 'old')).toBe(200);
      expect(served).toBe(1);

      // The gateway rotates: the JWKS now also lists a new key.
      rotating.push({ signer: next, kid: 'new' });
      vi.advanceTimersByTime(30_000);
      expect(await call(next, 'new')).toBe(401);
      for (let i = 0; i < 5; i++) expect(await call(next, `unknown-${i}`)).toBe(401);
      expect(served).toBe(1);

      // Past the cooldown, the unknown kid triggers one refetch, and the new key is accepted.
      vi.advanceTimersByTime(31_000);
      expect(await call(next, 'new')).toBe(200);
      expect(served).toBe(2);
      expect(await call(next, 'new')).toBe(200);
      expect(await call(old, 'old')).toBe(200);
      expect(served).toBe(2);

      // A new cooldown started with that fetch: unknown kids are refused without fetching.
      for (let i = 0; i < 5; i++) expect(await call(next, `unknown-${i}`)).toBe(401);
      expect(served).toBe(2);
      expect(spy).toHaveBeenCalledTimes(4);
      await server.close();
    } finally {
      vi.useRealTimers();
      await new Promise((r) => endpoint.close(r));
    }
  });
});
