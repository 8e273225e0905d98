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
