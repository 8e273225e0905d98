import { afterAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { pino } from 'pino';
import { randomUUID } from 'node:crypto';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from '../http/tool-server.js';
import { createTestSigner } from '../test-kit/index.js';
import { createRedisClient, redisReady } from './redis-client.js';
import { createRedisReplayStore } from './redis-replay-store.js';
import { post, runLimited, toolCallBody } from '../http/__fixtures__/loopback.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const logger = pino({ level: 'silent' });
const clients: { disconnect(): void }[] = [];
afterAll(() => clients.forEach((c) => c.disconnect()));

describe('Redis replay store', () => {
  it('S05 a signed request replayed 1,000x across two replicas on loopback sharing Redis runs exactly once', async () => {
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
    const replicas = redisClients.map((redis) =>
      createToolServer({
        id: audience,
        tools: [tool],
        auth: signer.auth,
        logger,
        stores: { replay: createRedisReplayStore(redis, audience) },
      }),
    );
    const urls = await Promise.all(replicas.map(async (r) => (await r.listen(0)).url));
    try {
      const body = toolCallBody('charge', { amount: 5 });
      const token = await signer.sign(body, { aud: audience });
      // 20 in flight at a time, alternating replicas, so both race for the one claim.
      const replies = await runLimited(1_000, 20, (i) => post(urls[i % 2]!, body, token));
      expect(replies.filter((r) => r.status === 200)).toHaveLength(1);
      const refused = replies.filter((r) => r.status === 401);
      expect(refused).toHaveLength(999);
      expect(new Set(refused.map((r) => r.body.error?.data?.details?.reason))).toEqual(
        new Set(['token replayed']),
      );
      // Each replica refused at least 499 of its 500: the claim is shared, not per process.
      for (const replica of [0, 1]) {
        const mine = replies.filter((r, i) => i % 2 === replica && r.status === 401);
        expect(mine.length).toBeGreaterThanOrEqual(499);
      }
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      await Promise.all(replicas.map((r) => r.close({ graceMs: 1_000 })));
    }
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
