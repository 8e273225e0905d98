import { afterEach, describe, expect, it } from 'vitest';
import { createServer, request } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BodyTooLargeError, hashBody } from './body.js';
import {
  TextResponse,
  fromNodeRequest,
  textResponse,
  toWebResponse,
  writeNodeResponse,
} from './node-adapter.js';

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** A real loopback server running `handler` through the Node adapter. */
async function serve(handler: (read: () => Promise<unknown>) => Promise<Response>) {
  server = createServer((req, res) => {
    const endpoint = fromNodeRequest(req, res, { maxBodyBytes: 16, requestTimeoutMs: 5_000 });
    void handler(endpoint.readBody).then((response) => writeNodeResponse(response, res));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

function post(port: number, body: string) {
  return new Promise<{ status: number; type: string | undefined; text: string }>(
    (resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', method: 'POST' }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, type: res.headers['content-type'], text }),
        );
      });
      req.on('error', reject);
      req.end(body);
    },
  );
}

describe('TextResponse', () => {
  it('reads like a Response for web readers, once, and converts to a plain Response', async () => {
    const r = textResponse('{"a":1}', {
      status: 201,
      headers: { 'content-type': 'application/json' },
    });
    expect(r).toBeInstanceOf(Response);
    expect(r.bodyUsed).toBe(false);
    expect(await r.json()).toEqual({ a: 1 });
    expect(r.bodyUsed).toBe(true);
    await expect(r.text()).rejects.toThrow();
    const plain = toWebResponse(textResponse('hi', { status: 404, headers: { 'x-k': 'v' } }));
    expect(plain).not.toBeInstanceOf(TextResponse);
    expect(plain.status).toBe(404);
    expect(plain.headers.get('x-k')).toBe('v');
    expect(await new Response(plain.body).text()).toBe('hi');
    const other = new Response('x');
    expect(toWebResponse(other)).toBe(other);
  });

  it('is written to Node in one piece with its status and headers', async () => {
    const port = await serve(async () =>
      textResponse('{"ok":true}', { status: 202, headers: { 'content-type': 'application/json' } }),
    );
    expect(await post(port, '')).toEqual({
      status: 202,
      type: 'application/json',
      text: '{"ok":true}',
    });
  });
});

describe('Node body reading', () => {
  it('reads and hashes the exact bytes', async () => {
    let read: unknown;
    const port = await serve(async (readBody) => {
      read = await readBody();
      return textResponse('ok');
    });
    await post(port, '{"x":"é"}');
    const body = read as { bytes: Buffer; hash: string };
    expect(body.bytes.toString('utf8')).toBe('{"x":"é"}');
    expect(body.hash).toBe(hashBody(Buffer.from('{"x":"é"}')));
  });

  it('fails past the cap and the 413 still reaches the client', async () => {
    let error: unknown;
    const port = await serve(async (readBody) => {
      try {
        await readBody();
      } catch (e) {
        error = e;
      }
      return textResponse('too large', { status: 413 });
    });
    const reply = await post(port, 'x'.repeat(64));
    expect(error).toBeInstanceOf(BodyTooLargeError);
    expect(reply.status).toBe(413);
    expect(reply.text).toBe('too large');
  });
});
