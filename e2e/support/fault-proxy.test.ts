import { createHash } from 'node:crypto';
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFaultProxy } from './fault-proxy.js';
import type { FaultProxy } from './fault-proxy.js';

interface Echo {
  port: number;
  requests: { method: string; url: string; body: Buffer }[];
  connections: number;
  finishedResponses: number;
  /** Replace the default echo reply. */
  reply: ((req: IncomingMessage, res: ServerResponse, body: Buffer) => void) | undefined;
  close(): Promise<void>;
}

// An upstream that records what reached it and echoes the body back.
async function startEcho(): Promise<Echo> {
  const echo: Echo = {
    port: 0,
    requests: [],
    connections: 0,
    finishedResponses: 0,
    reply: undefined,
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      echo.requests.push({ method: req.method ?? '', url: req.url ?? '', body });
      res.on('finish', () => echo.finishedResponses++);
      if (echo.reply) return echo.reply(req, res, body);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-url': req.url });
      res.end(body);
    });
  });
  server.on('connection', () => echo.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  echo.port = typeof address === 'object' && address ? address.port : 0;
  echo.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return echo;
}

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

// node:http, so errors keep their socket codes (ECONNRESET, ECONNREFUSED); a fresh connection
// per request unless an agent is given.
function send(
  url: string,
  options: { method?: string; body?: Buffer | string; agent?: Agent; signal?: AbortSignal } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
        agent: options.agent ?? false,
        ...(options.signal ? { signal: options.signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

async function failure(promise: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  try {
    await promise;
  } catch (error) {
    return error as NodeJS.ErrnoException;
  }
  throw new Error('expected the request to fail');
}

async function eventually(check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// A small seeded generator, so a "5 %" run is the same on every machine.
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('fault proxy', () => {
  let echo: Echo;
  let proxy: FaultProxy;
  const agents: Agent[] = [];
  const keepAlive = (): Agent => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    return agent;
  };

  beforeEach(async () => {
    echo = await startEcho();
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: echo.port } });
  });
  afterEach(async () => {
    for (const agent of agents.splice(0)) agent.destroy();
    await proxy.close();
    await echo.close();
  });

  it('forwards requests and replies byte for byte, on fresh and keep-alive connections', async () => {
    const small = await send(proxy.url('/hello?x=1'), { body: 'ping' });
    expect(small.status).toBe(200);
    expect(small.headers['x-url']).toBe('/hello?x=1');
    expect(small.body.toString()).toBe('ping');

    // 2 MiB each way: more than the proxy's queue high-water mark, so backpressure is exercised.
    const big = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) % 251;
    const reply = await send(proxy.url('/big'), { body: big });
    const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    expect(digest(reply.body)).toBe(digest(big));

    const agent = keepAlive();
    for (let i = 0; i < 5; i++) {
      expect((await send(proxy.url(`/k${i}`), { body: `n${i}`, agent })).body.toString()).toBe(
        `n${i}`,
      );
    }
    expect(echo.requests).toHaveLength(7);
    expect(proxy.stats.connections).toBe(3);
    expect(proxy.stats.exchanges).toBe(7);
    expect(proxy.stats.bytesUp).toBeGreaterThan(big.length);
    expect(proxy.stats.bytesDown).toBeGreaterThan(big.length);
  });

  it('latency: adds the delay to each chunk, both ways', async () => {
    await proxy.setFault({ kind: 'latency', ms: 150 });
    const started = performance.now();
    const reply = await send(proxy.url('/slow'), { body: 'x' });
    const elapsed = performance.now() - started;
    expect(reply.body.toString()).toBe('x');
    // One request chunk up, at least one reply chunk down: >= 2 x 150 ms, loosely bounded above.
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(3_000);

    await proxy.setFault('none');
    const fast = performance.now();
    await send(proxy.url('/fast'));
    expect(performance.now() - fast).toBeLessThan(150);
  });

  it('reset: the client sees ECONNRESET and the request never reaches the upstream', async () => {
    await proxy.setFault('reset');
    const error = await failure(send(proxy.url('/r'), { body: 'x' }));
    expect(error.code).toBe('ECONNRESET');
    expect(echo.requests).toHaveLength(0);
  });

  it('reset: also cuts a keep-alive connection that was healthy', async () => {
    const agent = keepAlive();
    expect((await send(proxy.url('/a'), { agent })).status).toBe(200);
    await proxy.setFault('reset');
    expect((await failure(send(proxy.url('/b'), { agent }))).code).toBe('ECONNRESET');
    expect(proxy.stats.connections).toBe(1);
    expect(echo.requests.map((r) => r.url)).toEqual(['/a']);
  });

  it('refuse: new connections are closed at once, without connecting upstream', async () => {
    await proxy.setFault('refuse');
    const error = await failure(send(proxy.url('/r')));
    expect(['ECONNRESET', 'EPIPE']).toContain(error.code);
    expect(proxy.stats.connections).toBe(1);
    expect(echo.connections).toBe(0);

    await proxy.setFault('none');
    expect((await send(proxy.url('/after'))).status).toBe(200);
  });

  it('down: the port refuses connections (ECONNREFUSED) until another fault is set', async () => {
    await proxy.setFault('down');
    expect((await failure(send(proxy.url('/d')))).code).toBe('ECONNREFUSED');
    await proxy.setFault('none');
    expect((await send(proxy.url('/up'), { body: 'back' })).body.toString()).toBe('back');
  });

  it('drop-reply: the upstream ran the request to the end, the client got a reset and no reply (S19, S20)', async () => {
    await proxy.setFault('drop-reply');
    const error = await failure(send(proxy.url('/charge'), { body: 'order-42' }));
    expect(error.code).toBe('ECONNRESET');
    expect(echo.requests).toHaveLength(1);
    expect(echo.requests[0]?.body.toString()).toBe('order-42');
    await eventually(() => echo.finishedResponses === 1);
    expect(proxy.stats.droppedReplies).toBe(1);
  });

  it('drop-reply-rate: decided per request, also on a keep-alive connection', async () => {
    const draws = [0.5, 0.01, 0.5, 0.5, 0.02, 0.5];
    let next = 0;
    await proxy.setFault({ kind: 'drop-reply-rate', rate: 0.05, random: () => draws[next++]! });
    const agent = keepAlive();
    const outcomes: string[] = [];
    for (let i = 0; i < draws.length; i++) {
      outcomes.push(
        await send(proxy.url(`/c${i}`), { agent }).then(
          (reply) => (reply.body.length === 0 && reply.status === 200 ? 'ok' : 'odd'),
          (error: NodeJS.ErrnoException) => error.code ?? 'error',
        ),
      );
    }
    expect(outcomes).toEqual(['ok', 'ECONNRESET', 'ok', 'ok', 'ECONNRESET', 'ok']);
    expect(next).toBe(6);
    expect(echo.requests).toHaveLength(6);
    // The keep-alive connection carried requests until a reply was dropped on it.
    expect(proxy.stats.connections).toBe(3);
    expect(proxy.stats.droppedReplies).toBe(2);
  });

  it('drop-reply-rate: 5 % over 400 keep-alive calls drops exactly the drawn ones (S19)', async () => {
    const seeded = mulberry32(19);
    const expected = mulberry32(19);
    await proxy.setFault({ kind: 'drop-reply-rate', rate: 0.05, random: seeded });
    const agent = keepAlive();
    let failed = 0;
    let expectedFailures = 0;
    for (let i = 0; i < 400; i++) {
      if (expected() < 0.05) expectedFailures++;
      await send(proxy.url(`/n${i}`), { body: String(i), agent }).catch(() => failed++);
    }
    expect(expectedFailures).toBeGreaterThan(5);
    expect(failed).toBe(expectedFailures);
    expect(echo.requests).toHaveLength(400);
    expect(proxy.stats.droppedReplies).toBe(expectedFailures);
  });

  it('hang: reads but never forwards nor answers; the client gives up on its own signal (S17)', async () => {
    await proxy.setFault('hang');
    const started = performance.now();
    const error = await failure(send(proxy.url('/h'), { signal: AbortSignal.timeout(300) }));
    const elapsed = performance.now() - started;
    expect(error.name).toBe('AbortError');
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(2_000);
    expect(proxy.stats.bytesUp).toBeGreaterThan(0);
    expect(echo.requests).toHaveLength(0);
  });

  it('slow-drip: the reply arrives one byte at a time, paced (S21)', async () => {
    echo.reply = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' });
      res.end('hello');
    };
    await proxy.setFault({ kind: 'slow-drip', intervalMs: 4 });
    const socket = connect({ host: '127.0.0.1', port: proxy.port });
    const started = performance.now();
    let events = 0;
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        events++;
        chunks.push(chunk);
      });
      socket.on('end', resolve);
      socket.on('error', reject);
      socket.write('GET /drip HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    });
    socket.destroy();
    const elapsed = performance.now() - started;
    const text = Buffer.concat(chunks).toString();
    expect(text.startsWith('HTTP/1.1 200 OK')).toBe(true);
    expect(text.endsWith('\r\n\r\nhello')).toBe(true);
    // Each byte at least 4 ms after the one before it.
    expect(elapsed).toBeGreaterThanOrEqual((text.length - 1) * 4 * 0.9);
    expect(events).toBeGreaterThan(text.length / 2);
  });

  it('slow-drip: a large reply is not buffered in the proxy; close() stops it mid-drip (S21)', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 7);
    echo.reply = (_req, res) => {
      res.writeHead(200, { 'content-length': String(big.length) });
      res.end(big);
    };
    await proxy.setFault({ kind: 'slow-drip', intervalMs: 5 });
    const pending = failure(send(proxy.url('/big')));
    await eventually(() => echo.requests.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The proxy stopped reading at its high-water mark; TCP pushes back on the upstream.
    expect(proxy.stats.bytesDown).toBeLessThan(512 * 1024);
    await proxy.close();
    const error = await pending;
    expect(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR']).toContain(
      error.code ?? error.message,
    );
    expect(proxy.stats.open).toBe(0);
  });

  it('a dead upstream shows through the proxy as a reset (use `down` for ECONNREFUSED)', async () => {
    await echo.close();
    const error = await failure(send(proxy.url('/gone'), { body: 'x' }));
    expect(['ECONNRESET', 'EPIPE']).toContain(error.code);
    await eventually(() => proxy.stats.open === 0);
  });

  it('close: ends open connections and frees the port', async () => {
    await proxy.setFault('hang');
    const pending = failure(send(proxy.url('/x'), { signal: AbortSignal.timeout(5_000) }));
    await eventually(() => proxy.stats.open === 1);
    await proxy.close();
    const error = await pending;
    expect(error.name).not.toBe('AbortError');
    expect(proxy.stats.open).toBe(0);
    expect((await failure(send(proxy.url('/y')))).code).toBe('ECONNREFUSED');
  });
});
