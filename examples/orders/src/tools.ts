import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Database } from 'better-sqlite3';
import { defineTool } from '@keel/tool-sdk';

const money = z.object({ amountCents: z.number().int(), currency: z.string() });
const order = z.object({
  id: z.string(),
  customerId: z.string(),
  status: z.enum(['pending', 'paid', 'shipped', 'delivered', 'refunded', 'cancelled']),
  total: money,
  refundedCents: z.number().int(),
  createdAt: z.string(),
  items: z.array(
    z.object({
      sku: z.string(),
      name: z.string(),
      quantity: z.number().int(),
      unitCents: z.number().int(),
    }),
  ),
});
type Order = z.infer<typeof order>;

interface OrderRow {
  id: string;
  customer_id: string;
  status: Order['status'];
  total_cents: number;
  currency: string;
  created_at: string;
}

/** The orders tools over one database. */
export function ordersTools(db: Database) {
  const orderById = db.prepare('SELECT * FROM orders WHERE id = ?');
  const itemsOf = db.prepare(
    'SELECT sku, name, quantity, unit_cents AS unitCents FROM order_items WHERE order_id = ?',
  );
  const refundedOf = db.prepare(
    'SELECT COALESCE(SUM(amount_cents), 0) AS n FROM refunds WHERE order_id = ?',
  );
  const refundByKey = db.prepare('SELECT * FROM refunds WHERE idempotency_key = ?');
  const insertRefund = db.prepare(
    'INSERT INTO refunds (id, order_id, amount_cents, reason, idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const setStatus = db.prepare('UPDATE orders SET status = ? WHERE id = ?');

  const load = (id: string): Order | undefined => {
    const row = orderById.get(id) as OrderRow | undefined;
    if (!row) return undefined;
    return {
      id: row.id,
      customerId: row.customer_id,
      status: row.status,
      total: { amountCents: row.total_cents, currency: row.currency },
      refundedCents: (refundedOf.get(id) as { n: number }).n,
      createdAt: row.created_at,
      items: itemsOf.all(id) as Order['items'],
    };
  };

  const getOrder = defineTool({
    name: 'get_order',
    title: 'Look up an order',
    description: 'Look up one order by id (e.g. ord_1001), with its items and refunded amount.',
    input: z.object({ orderId: z.string().regex(/^ord_\d+$/, 'an order id looks like ord_1001') }),
    output: order,
    errors: { ORDER_NOT_FOUND: { retryable: false, description: 'No order has this id' } },
    annotations: { readOnly: true },
    handler: ({ orderId }, ctx) =>
      load(orderId) ?? ctx.fail('ORDER_NOT_FOUND', `No order ${orderId}`),
  });

  const listCustomerOrders = defineTool({
    name: 'list_customer_orders',
    title: "List a customer's orders",
    description: "List a customer's orders, newest first, optionally by status.",
    input: z.object({
      customerId: z.string().regex(/^cus_\d+$/),
      status: order.shape.status.optional(),
      limit: z.number().int().min(1).max(50).default(10),
    }),
    output: z.object({ orders: z.array(order.omit({ items: true })) }),
    annotations: { readOnly: true },
    handler: ({ customerId, status, limit }) => {
      const rows = db
        .prepare(
          `SELECT id FROM orders WHERE customer_id = ? ${status ? 'AND status = ?' : ''} ORDER BY created_at DESC LIMIT ?`,
        )
        .all(...(status ? [customerId, status, limit] : [customerId, limit])) as { id: string }[];
      return { orders: rows.map((r) => load(r.id)!) };
    },
  });

  const refundOrder = defineTool({
    name: 'refund_order',
    title: 'Refund an order',
    description:
      'Refund an order in full or in part. Destructive; the same idempotency key never refunds twice.',
    input: z.object({
      orderId: z.string().regex(/^ord_\d+$/),
      amountCents: z.number().int().positive().optional(),
      reason: z.string().min(3).max(200),
    }),
    output: z.object({
      refundId: z.string(),
      orderId: z.string(),
      amountCents: z.number().int(),
      status: z.string(),
    }),
    errors: {
      ORDER_NOT_FOUND: { retryable: false, description: 'No order has this id' },
      ORDER_NOT_REFUNDABLE: {
        retryable: false,
        description: 'Pending, cancelled or fully refunded orders cannot be refunded',
      },
      REFUND_EXCEEDS_BALANCE: {
        retryable: false,
        description: 'The amount is more than what is left to refund',
      },
    },
    annotations: { destructive: true, idempotent: true },
    handler: ({ orderId, amountCents, reason }, ctx) => {
      // The gateway's idempotency key when there is one; else each call is its own refund.
      const key = ctx.idempotencyKey
        ? `${ctx.caller?.sub ?? ''}:${ctx.idempotencyKey}`
        : randomUUID();
      return db.transaction(() => {
        const existing = refundByKey.get(key) as
          { id: string; order_id: string; amount_cents: number } | undefined;
        if (existing) {
          return {
            refundId: existing.id,
            orderId: existing.order_id,
            amountCents: existing.amount_cents,
            status: load(existing.order_id)!.status,
          };
        }
        const current = load(orderId) ?? ctx.fail('ORDER_NOT_FOUND', `No order ${orderId}`);
        const left = current.total.amountCents - current.refundedCents;
        if (['pending', 'cancelled', 'refunded'].includes(current.status) || left <= 0) {
          ctx.fail(
            'ORDER_NOT_REFUNDABLE',
            `Order ${orderId} is ${current.status} and cannot be refunded`,
          );
        }
        const amount = amountCents ?? left;
        if (amount > left)
          ctx.fail(
            'REFUND_EXCEEDS_BALANCE',
            `At most ${left} cents are left to refund on ${orderId}`,
            { leftCents: left },
          );
        const refundId = `rf_${randomUUID().slice(0, 8)}`;
        insertRefund.run(refundId, orderId, amount, reason, key, new Date().toISOString());
        const status = amount === left ? 'refunded' : current.status;
        setStatus.run(status, orderId);
        return { refundId, orderId, amountCents: amount, status };
      })();
    },
  });

  return [getOrder, listCustomerOrders, refundOrder];
}
