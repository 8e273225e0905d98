import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createToolServer } from '@keel/tool-sdk';
import { createTestClient, createTestSigner } from '@keel/tool-sdk/test';
import { openOrdersDb } from './db.js';
import { ordersTools } from './tools.js';

async function setup() {
  const signer = await createTestSigner();
  const server = createToolServer({
    id: 'orders',
    tools: ordersTools(openOrdersDb()),
    auth: signer.auth,
    logger: pino({ level: 'silent' }),
  });
  return createTestClient(server, { signer, claims: { aud: 'orders', sub: 'agent-1' } });
}

describe('orders example', () => {
  it('looks up an order with its items', async () => {
    const client = await setup();
    const r = await client.callTool('get_order', { orderId: 'ord_1002' });
    expect(r.structuredContent).toMatchObject({
      id: 'ord_1002',
      customerId: 'cus_002',
      status: 'paid',
    });
    expect((r.structuredContent as { items: unknown[] }).items.length).toBeGreaterThan(0);
    expect((await client.callTool('get_order', { orderId: 'ord_9' })).error?.code).toBe(
      'ORDER_NOT_FOUND',
    );
  });

  it("lists a customer's orders newest first", async () => {
    const client = await setup();
    const r = await client.callTool('list_customer_orders', { customerId: 'cus_001', limit: 3 });
    const orders = (r.structuredContent as { orders: { createdAt: string }[] }).orders;
    expect(orders).toHaveLength(3);
    expect(orders[0]!.createdAt > orders[1]!.createdAt).toBe(true);
  });

  it('refunds once per idempotency key, with declared errors', async () => {
    const client = await setup();
    const first = await client.callTool(
      'refund_order',
      { orderId: 'ord_1002', reason: 'damaged' },
      { claims: { idk: 'r-1' } },
    );
    expect(first.structuredContent).toMatchObject({ orderId: 'ord_1002', status: 'refunded' });
    const again = await client.callTool(
      'refund_order',
      { orderId: 'ord_1002', reason: 'damaged' },
      { claims: { idk: 'r-1' } },
    );
    expect(again.structuredContent).toEqual(first.structuredContent);
    const more = await client.callTool(
      'refund_order',
      { orderId: 'ord_1002', reason: 'damaged' },
      { claims: { idk: 'r-2' } },
    );
    expect(more.error?.code).toBe('ORDER_NOT_REFUNDABLE');
    const pending = await client.callTool('refund_order', {
      orderId: 'ord_1001',
      reason: 'x'.repeat(5),
    });
    expect(pending.error?.code).toBe('ORDER_NOT_REFUNDABLE');
    const tooMuch = await client.callTool('refund_order', {
      orderId: 'ord_1003',
      amountCents: 10_000_000,
      reason: 'test',
    });
    expect(tooMuch.error).toMatchObject({ code: 'REFUND_EXCEEDS_BALANCE', retryable: false });
  });
});
