import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { pino } from 'pino';
import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from '../http/tool-server.js';
import { createTestClient, createTestSigner } from '../test-kit/index.js';
import { createRedisClient, redisReady } from '../stores/redis-client.js';
import { post, toolCallBody } from '../http/__fixtures__/loopback.js';
import type { LoopbackReply } from '../http/__fixtures__/loopback.js';

async function setup(handlerDelayMs = 0) {
  const sideEffect = vi.fn();
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const refund = defineTool({
    name: 'refund',
    description: 'Refund an order',
    input: z.object({ orderId: z.string(), amount: z.number() }),
    output: z.object({ refundId: z.string() }),
    annotations: { destructive: true, idempotent: true },
    handler: async ({ orderId }) => {
      sideEffect(orderId);
      if (handlerDelayMs) await gate;
      return { refundId: `rf_${sideEffect.mock.calls.length}` };
    },
  });
  const signer = await createTestSigner();
  const server = createToolServer({
    id: 'orders',
    tools: [refund],
    auth: signer.auth,
    logger: pino({ level: 'silent' }),
  });
  const client = createTestClient(server, { signer, claims: { aud: 'orders', sub: 'user-1' } });
  return { client, sideEffect, release };
}

describe('idempotency (idk claim)', () => {
  it('S19 a replayed idk returns the saved result without running the handler again', async () => {
    const { client, sideEffect } = await setup();
    const first = await client.callTool(
      'refund',
      { orderId: 'o1', amount: 5 },
      { claims: { idk: 'key-1' } },
    );
    const again = await client.callTool(
      'refund',
      { orderId: 'o1', amount: 5 },
      { claims: { idk: 'key-1' } },
    );
    expect(again.structuredContent).toEqual(first.structuredContent);
    expect(sideEffect).toHaveBeenCalledTimes(1);
    const other = await client.callTool(
      'refund',
      { orderId: 'o1', amount: 5 },
      { claims: { idk: 'key-2' } },
    );
    expect(other.structuredContent).toEqual({ refundId: 'rf_2' });
  });

  it('S19 two concurrent calls with one idk run the handler once; the second gets CONFLICT', async () => {
    const { client, sideEffect, release } = await setup(1);
    const a = client.callTool('refund', { orderId: 'o1', amount: 5 }, { claims: { idk: 'k' } });
    await vi.waitFor(() => expect(sideEffect).toHaveBeenCalledTimes(1));
    const b = await client.callTool(
      'refund',
      { orderId: 'o1', amount: 5 },
      { claims: { idk: 'k' } },
    );
    expect(b.error).toMatchObject({ code: 'CONFLICT', retryable: true });
    release();
    expect((await a).structuredContent).toEqual({ refundId: 'rf_1' });
    expect(sideEffect).toHaveBeenCalledTimes(1);
  });

  it('the same idk with other arguments is INVALID_INPUT', async () => {
    const { client } = await setup();
    await client.callTool('refund', { orderId: 'o1', amount: 5 }, { claims: { idk: 'k' } });
    const r = await client.callTool(
      'refund',
      { orderId: 'o1', amount: 50 },
      { claims: { idk: 'k' } },
    );
    expect(r.error?.code).toBe('INVALID_INPUT');
  });

  it('the scope includes the caller: another user with the same idk runs separately', async () => {
    const { client, sideEffect } = await setup();
    await client.callTool(
      'refund',
      { orderId: 'o1', amount: 5 },
      { claims: { idk: 'k', sub: 'a' } },
    );
    await client.callTool(
      'refund',
      { orderId: 'o1', amount: 5 },
      { claims: { idk: 'k', sub: 'b' } },
    );
    expect(sideEffect).toHaveBeenCalledTimes(2);
  });
});

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Two replicas of one logical server, each listening on loopback and configured for Redis only
 * through `env.REDIS_URL` (no explicit stores), under a fresh audience so keys never collide.
 */
async function setupReplicas() {
  const audience = `idk-${randomUUID().slice(0, 8)}`;
  const sideEffect = vi.fn();
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  let gated = false;
  // One tool instance per replica, so a reply says which replica really ran the handler.
  const refundOn = (replica: string) =>
    defineTool({
      name: 'refund',
      description: 'Refund an order',
      input: z.object({ orderId: z.string(), amount: z.number() }),
      output: z.object({ refundId: z.string(), ranOn: z.string() }),
      annotations: { destructive: true, idempotent: true },
      handler: async ({ orderId }) => {
        sideEffect(orderId, replica);
        if (gated) await gate;
        return { refundId: `rf_${sideEffect.mock.calls.length}`, ranOn: replica };
      },
    });
  const signer = await createTestSigner();
  const replicas = ['a', 'b'].map((replica) =>
    createToolServer({
      id: audience,
      tools: [refundOn(replica)],
      auth: signer.auth,
      logger: pino({ level: 'silent' }),
      env: { REDIS_URL },
    }),
  );
  const urls = await Promise.all(replicas.map(async (r) => (await r.listen(0)).url));
  // The replicas' Redis clients connect in the background; until then calls fail closed (503).
  const list = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
  for (const url of urls) {
    await vi.waitFor(
      async () =>
        expect((await post(url, list, await signer.sign(list, { aud: audience }))).status).toBe(
          200,
        ),
      { timeout: 5_000, interval: 20 },
    );
  }
  const redis = createRedisClient(REDIS_URL);
  await redisReady(redis);
  const idkKeys = () => redis.keys(`keel:ts:{${audience}}:idk:*`);
  return {
    audience,
    urls: urls as [string, string],
    sideEffect,
    gate: () => (gated = true),
    release: () => release(),
    idkKeys,
    redis,
    call: async (url: string, idk: string, args = { orderId: 'o1', amount: 5 }) => {
      const body = toolCallBody('refund', args);
      const token = await signer.sign(body, { aud: audience, sub: 'user-1', idk });
      return { token, reply: await post(url, body, token) };
    },
    async close() {
      await Promise.all(replicas.map((r) => r.close({ graceMs: 1_000 })));
      const keys = await redis.keys(`keel:ts:{${audience}}:*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    },
  };
}

const errorOf = (reply: LoopbackReply) =>
  reply.body.result?._meta?.['dev.keel/error'] as { code: string; retryable: boolean } | undefined;

describe('idempotency across two replicas sharing Redis (REDIS_URL only)', () => {
  it('S19 two tokens (different jti) with one idk: the handler runs once and the other replica returns the saved result', async () => {
    const r = await setupReplicas();
    try {
      const first = await r.call(r.urls[0], 'key-1');
      const second = await r.call(r.urls[1], 'key-1');
      // Two distinct tokens, so the replay store lets both in: only idempotency stops the repeat.
      expect(decodeJwt(first.token).jti).not.toBe(decodeJwt(second.token).jti);
      expect(first.reply.status).toBe(200);
      expect(first.reply.body.result?.structuredContent).toEqual({ refundId: 'rf_1', ranOn: 'a' });
      expect(second.reply.status).toBe(200);
      expect(second.reply.body.result?.isError).toBeUndefined();
      expect(second.reply.body.result?.structuredContent).toEqual({ refundId: 'rf_1', ranOn: 'a' });
      expect(r.sideEffect).toHaveBeenCalledTimes(1);
      // The claim lives in Redis (so a third process would see it too) for the 24 h result TTL.
      const keys = await r.idkKeys();
      expect(keys).toHaveLength(1);
      expect(await r.redis.pttl(keys[0]!)).toBeGreaterThan(23 * 60 * 60 * 1000);
      // Another key is another logical call.
      const other = await r.call(r.urls[1], 'key-2');
      expect(other.reply.body.result?.structuredContent).toEqual({ refundId: 'rf_2', ranOn: 'b' });
    } finally {
      await r.close();
    }
  });

  it('S19 20 concurrent calls with one idk across two replicas: handler once, the rest CONFLICT (retryable), then the saved result', async () => {
    const r = await setupReplicas();
    try {
      r.gate();
      let answered = 0;
      const calls = Array.from({ length: 20 }, (_, i) =>
        r.call(r.urls[i % 2]!, 'key-c').then((c) => (answered++, c.reply)),
      );
      // While the winner holds its claim, every other call is answered at once. A second
      // execution would block on the gate too and this wait would fail.
      await vi.waitFor(() => expect(answered).toBe(19), { timeout: 5_000, interval: 10 });
      expect(r.sideEffect).toHaveBeenCalledTimes(1);
      r.release();
      const replies = await Promise.all(calls);
      const winners = replies.filter((x) => x.body.result?.structuredContent !== undefined);
      expect(winners).toHaveLength(1);
      const losers = replies.filter((x) => x.body.result?.structuredContent === undefined);
      expect(losers).toHaveLength(19);
      for (const loser of losers) {
        expect(loser.status).toBe(200);
        expect(loser.body.result?.isError).toBe(true);
        expect(errorOf(loser)).toMatchObject({ code: 'CONFLICT', retryable: true });
      }
      // A retry after the winner finished gets its saved result, on either replica.
      for (const url of r.urls) {
        const retry = await r.call(url, 'key-c');
        expect(retry.reply.body.result?.structuredContent).toEqual(
          winners[0]!.body.result?.structuredContent,
        );
      }
      expect(r.sideEffect).toHaveBeenCalledTimes(1);
    } finally {
      r.release();
      await r.close();
    }
  });
});
