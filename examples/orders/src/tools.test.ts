import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createToolServer } from '@keel/tool-sdk';
import { createTestClient, createTestSigner } from '@keel/tool-sdk/test';
import { openOrdersDb } from './db.js';
import { ordersTools } from './tools.js';

const NOW = new Date('2026-11-28T12:00:00.000Z');

/**
 * An orders database and clients of tool servers over it. Each server has its own SDK
 * idempotency store, so a second one is a replica that does not remember the first one's keys.
 */
async function setup() {
  const signer = await createTestSigner();
  const db = openOrdersDb();
  let refundIds = 0;
  let keys = 0;
  const serve = (sub = 'agent-1') => {
    const server = createToolServer({
      id: 'orders',
      tools: ordersTools(db, {
        now: () => NOW,
        newRefundId: () => `rf_test${++refundIds}`,
        newIdempotencyKey: () => `nokey-${++keys}`,
      }),
      auth: signer.auth,
      logger: pino({ level: 'silent' }),
    });
    return createTestClient(server, { signer, claims: { aud: 'orders', sub } });
  };
  const refunds = () =>
    db
      .prepare<[], RefundRow>(
        "SELECT id, order_id, amount_cents, reason, idempotency_key FROM refunds WHERE idempotency_key NOT LIKE 'seed:%' ORDER BY created_at, id",
      )
      .all();
  return { serve, client: serve(), refunds };
}

interface RefundRow {
  id: string;
  order_id: string;
  amount_cents: number;
  reason: string;
  idempotency_key: string;
}

const ORD_1002 = {
  id: 'ord_1002',
  customerId: 'cus_002',
  status: 'paid',
  total: { amountCents: 8400, currency: 'EUR' },
  refundedCents: 0,
  createdAt: '2026-01-07T11:32:00.000Z',
  items: [
    { sku: 'SKU-BAG', name: 'Waxed tote bag', quantity: 2, unitCents: 3600 },
    { sku: 'SKU-NTB', name: 'Dot-grid notebook', quantity: 1, unitCents: 1200 },
  ],
};

describe('orders example', () => {
  it('lists the three tools with their schemas, hints and declared errors', async () => {
    const { client } = await setup();
    const tools = (await client.request('tools/list', {})).message.result as {
      tools: {
        name: string;
        inputSchema: { properties: Record<string, unknown>; required?: string[] };
        outputSchema: { properties: Record<string, unknown> };
        annotations: Record<string, unknown>;
        _meta?: Record<string, Record<string, unknown>>;
      }[];
    };
    const byName = Object.fromEntries(tools.tools.map((t) => [t.name, t]));
    expect(Object.keys(byName)).toEqual(['get_order', 'list_customer_orders', 'refund_order']);
    const errorsOf = (name: string) => Object.keys(byName[name]!._meta?.['dev.keel/errors'] ?? {});
    expect(errorsOf('get_order')).toEqual(['ORDER_NOT_FOUND']);
    expect(errorsOf('list_customer_orders')).toEqual([]);
    expect(errorsOf('refund_order')).toEqual([
      'ORDER_NOT_FOUND',
      'ORDER_NOT_REFUNDABLE',
      'REFUND_EXCEEDS_BALANCE',
    ]);
    expect(Object.keys(byName.get_order!.inputSchema.properties)).toEqual(['orderId']);
    expect(Object.keys(byName.get_order!.outputSchema.properties)).toEqual(Object.keys(ORD_1002));
    expect(Object.keys(byName.list_customer_orders!.inputSchema.properties)).toEqual([
      'customerId',
      'status',
      'limit',
    ]);
    expect(Object.keys(byName.refund_order!.inputSchema.properties)).toEqual([
      'orderId',
      'amountCents',
      'reason',
    ]);
    expect(byName.refund_order!.inputSchema.required).toEqual(['orderId', 'reason']);
    expect(Object.keys(byName.refund_order!.outputSchema.properties)).toEqual([
      'refundId',
      'orderId',
      'amountCents',
      'status',
    ]);
    expect(byName.get_order!.annotations).toMatchObject({ readOnlyHint: true });
    expect(byName.refund_order!.annotations).toMatchObject({
      destructiveHint: true,
      idempotentHint: true,
    });
  });

  it('looks up an order with its items and refunded amount', async () => {
    const { client } = await setup();
    const r = await client.callTool('get_order', { orderId: 'ord_1002' });
    expect(r.structuredContent).toEqual(ORD_1002);
    // ord_1005 is partly refunded in the seed.
    const partly = await client.callTool('get_order', { orderId: 'ord_1005' });
    expect(partly.structuredContent).toMatchObject({
      status: 'delivered',
      total: { amountCents: 4100, currency: 'EUR' },
      refundedCents: 1200,
    });
    const missing = await client.callTool('get_order', { orderId: 'ord_9' });
    expect(missing.error).toMatchObject({
      code: 'ORDER_NOT_FOUND',
      message: 'No order ord_9',
      retryable: false,
    });
    expect((await client.callTool('get_order', { orderId: 'x' })).error?.code).toBe(
      'INVALID_INPUT',
    );
  });

  it("lists a customer's orders newest first, by status, up to the limit", async () => {
    const { client } = await setup();
    const list = async (args: Record<string, unknown>) => {
      const r = await client.callTool('list_customer_orders', args);
      expect(r.error).toBeUndefined();
      return (r.structuredContent as { orders: Record<string, unknown>[] }).orders;
    };
    const all = await list({ customerId: 'cus_001' });
    expect(all.map((o) => o.id)).toEqual([
      'ord_1033',
      'ord_1025',
      'ord_1017',
      'ord_1009',
      'ord_1001',
    ]);
    expect(all[1]).toEqual({
      id: 'ord_1025',
      customerId: 'cus_001',
      status: 'delivered',
      total: { amountCents: 1900, currency: 'EUR' },
      refundedCents: 950,
      createdAt: '2026-02-22T14:03:00.000Z',
    });
    expect((await list({ customerId: 'cus_001', limit: 3 })).map((o) => o.id)).toEqual([
      'ord_1033',
      'ord_1025',
      'ord_1017',
    ]);
    expect((await list({ customerId: 'cus_001', status: 'shipped' })).map((o) => o.id)).toEqual([
      'ord_1033',
      'ord_1017',
    ]);
    expect(await list({ customerId: 'cus_001', status: 'refunded' })).toEqual([]);
    // An unknown customer has no orders (the tool declares no error for it).
    expect(await list({ customerId: 'cus_999' })).toEqual([]);
    const tooMany = await client.callTool('list_customer_orders', {
      customerId: 'cus_001',
      limit: 51,
    });
    expect(tooMany.error?.code).toBe('INVALID_INPUT');
  });

  it('refunds once per idempotency key, with declared errors', async () => {
    const { client, refunds } = await setup();
    const first = await client.callTool(
      'refund_order',
      { orderId: 'ord_1002', reason: 'damaged' },
      { claims: { idk: 'r-1' } },
    );
    expect(first.structuredContent).toEqual({
      refundId: 'rf_test1',
      orderId: 'ord_1002',
      amountCents: 8400,
      status: 'refunded',
    });
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
    expect(more.error).toMatchObject({
      code: 'ORDER_NOT_REFUNDABLE',
      message: 'Order ord_1002 is refunded and cannot be refunded',
    });
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
    expect(tooMuch.error).toMatchObject({
      code: 'REFUND_EXCEEDS_BALANCE',
      message: 'At most 11300 cents are left to refund on ord_1003',
      retryable: false,
      details: { leftCents: 11300 },
    });
    const unknown = await client.callTool('refund_order', { orderId: 'ord_9999', reason: 'test' });
    expect(unknown.error).toMatchObject({ code: 'ORDER_NOT_FOUND', message: 'No order ord_9999' });
    // The schema lets a blank reason of three spaces through; the repository refuses it.
    const blank = await client.callTool('refund_order', { orderId: 'ord_1003', reason: '   ' });
    expect(blank.error).toMatchObject({ code: 'INVALID_INPUT', message: 'A reason is required' });
    expect(refunds()).toEqual([
      {
        id: 'rf_test1',
        order_id: 'ord_1002',
        amount_cents: 8400,
        reason: 'damaged',
        idempotency_key: 'agent-1:r-1',
      },
    ]);
  });

  it('keeps a key in the database, so a replica that never saw it does not refund again', async () => {
    const { serve, client, refunds } = await setup();
    const args = { orderId: 'ord_1003', amountCents: 500, reason: 'late delivery' };
    const first = await client.callTool('refund_order', args, { claims: { idk: 'r-7' } });
    expect(first.structuredContent).toEqual({
      refundId: 'rf_test1',
      orderId: 'ord_1003',
      amountCents: 500,
      status: 'shipped',
    });
    // A second server over the same database has an empty SDK idempotency store.
    const replica = serve();
    const again = await replica.callTool('refund_order', args, { claims: { idk: 'r-7' } });
    expect(again.structuredContent).toEqual(first.structuredContent);
    // Without an amount, the repeat matches what the first call refunded.
    const { amountCents: _, ...noAmount } = args;
    const third = await serve().callTool('refund_order', noAmount, {
      claims: { idk: 'r-7' },
    });
    expect(third.structuredContent).toEqual(first.structuredContent);
    expect(refunds()).toHaveLength(1);

    // The same key with other arguments is the caller's mistake, never another refund.
    for (const other of [
      { ...args, amountCents: 501 },
      { ...args, orderId: 'ord_1004' },
    ]) {
      const conflict = await serve().callTool('refund_order', other, {
        claims: { idk: 'r-7' },
      });
      expect(conflict.error?.code).toBe('INVALID_INPUT');
    }
    expect(refunds()).toHaveLength(1);
    const order = await client.callTool('get_order', { orderId: 'ord_1003' });
    expect(order.structuredContent).toMatchObject({ status: 'shipped', refundedCents: 500 });
  });

  it('scopes keys to the caller, and refunds every call that has no key', async () => {
    const { serve, client, refunds } = await setup();
    const args = { orderId: 'ord_1004', amountCents: 100, reason: 'scratched' };
    await client.callTool('refund_order', args, { claims: { idk: 'same' } });
    const other = await serve('agent-2').callTool('refund_order', args, {
      claims: { idk: 'same' },
    });
    expect(other.structuredContent).toMatchObject({ refundId: 'rf_test2', amountCents: 100 });
    expect(refunds().map((r) => r.idempotency_key)).toEqual(['agent-1:same', 'agent-2:same']);

    const a = await client.callTool('refund_order', args);
    const b = await client.callTool('refund_order', args);
    expect(a.structuredContent).toMatchObject({ refundId: 'rf_test3', status: 'delivered' });
    expect(b.structuredContent).toMatchObject({ refundId: 'rf_test4', status: 'delivered' });
    expect(refunds()).toHaveLength(4);
    const order = await client.callTool('get_order', { orderId: 'ord_1004' });
    expect(order.structuredContent).toMatchObject({ refundedCents: 400 });
  });

  it('refunds in parts until nothing is left, then refuses', async () => {
    const { client, refunds } = await setup();
    // ord_1005: 4100 EUR with 1200 refunded in the seed.
    const part = await client.callTool('refund_order', {
      orderId: 'ord_1005',
      amountCents: 900,
      reason: 'late',
    });
    expect(part.structuredContent).toMatchObject({ amountCents: 900, status: 'delivered' });
    const rest = await client.callTool('refund_order', { orderId: 'ord_1005', reason: 'returned' });
    expect(rest.structuredContent).toMatchObject({ amountCents: 2000, status: 'refunded' });
    const order = await client.callTool('get_order', { orderId: 'ord_1005' });
    expect(order.structuredContent).toMatchObject({ status: 'refunded', refundedCents: 4100 });
    const after = await client.callTool('refund_order', { orderId: 'ord_1005', reason: 'again' });
    expect(after.error?.code).toBe('ORDER_NOT_REFUNDABLE');
    expect(refunds()).toHaveLength(2);
  });
});
