import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { pino } from 'pino';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from '../http/tool-server.js';
import { createTestClient, createTestSigner } from '../test-kit/index.js';

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
