import { afterAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { pino } from 'pino';
import { randomUUID } from 'node:crypto';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from '../http/tool-server.js';
import { createTestSigner } from '../test-kit/index.js';
import { createRedisClient, redisReady } from './redis-client.js';
import { createRedisReplayStore } from './redis-replay-store.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const logger = pino({ level: 'silent' });
const clients: { disconnect(): void }[] = [];
afterAll(() => clients.forEach((c) => c.disconnect()));

describe('Redis replay store', () => {
  it('S05 a request replayed 200x across two replicas sharing Redis runs exactly once', async () => {
    const spy = vi.fn();
    const tool = defineTool({
      name: 'charge',
      description: 'side effect',
      input: z.object({ amount: z.number() }),
      handler: ({ amount }) => {
        spy(amount);
        return 'charged';
      },
    });
    const signer = await createTestSigner();
    const audience = `t${randomUUID().slice(0, 8)}`;
    const redisClients = [createRedisClient(REDIS_URL), createRedisClient(REDIS_URL)];
    clients.push(...redisClients);
    await Promise.all(redisClients.map((c) => redisReady(c)));
    const replicas = redisClients.map((redis) => {
      return createToolServer({
        id: audience,
        tools: [tool],
        auth: signer.auth,
        logger,
        stores: { replay: createRedisReplayStore(redis, audience) },
      });
    });
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'charge', arguments: { amount: 5 } },
    });
    const token = await signer.sign(body, { aud: audience });
    const statuses = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        replicas[i % 2]!.fetch(
          new Request('http://localhost/mcp', {
            method: 'POST',
            headers: {
              authorization: `Bearer ${token}`,
              'content-type': 'application/json',
              accept: 'application/json',
            },
            body,
          }),
        ).then((r) => r.status),
      ),
    );
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 401)).toHaveLength(199);
    expect(spy).toHaveBeenCalledTimes(1);
  });

  it('fails closed (503, retryable) when Redis is unreachable', async () => {
    const redis = createRedisClient('redis://127.0.0.1:1');
    clients.push(redis);
    const signer = await createTestSigner();
    const spy = vi.fn();
    const tool = defineTool({
      name: 't',
      description: 'd',
      input: z.object({}),
      handler: () => (spy(), 'x'),
    });
    const server = createToolServer({
      id: 'down',
      tools: [tool],
      auth: signer.auth,
      logger,
      stores: { replay: createRedisReplayStore(redis, 'down') },
    });
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 't', arguments: {} },
    });
    const started = Date.now();
    const r = await server.fetch(
      new Request('http://localhost/mcp', {
        method: 'POST',
        headers: {
          authorization: `Bearer ${await signer.sign(body, { aud: 'down' })}`,
          'content-type': 'application/json',
        },
        body,
      }),
    );
    expect(r.status).toBe(503);
    expect(
      ((await r.json()) as { error: { data: { retryable: boolean } } }).error.data.retryable,
    ).toBe(true);
    expect(Date.now() - started).toBeLessThan(1800);
    expect(spy).not.toHaveBeenCalled();
  });
});
