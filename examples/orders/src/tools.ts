import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ToolSdkError, defineTool } from '@keel/tool-sdk';
import { ORDER_STATUSES } from './db.js';
import type { OrdersDb } from './db.js';
import { OrdersError, OrdersRepo } from './orders-repo.js';
import type { Order as RepoOrder, OrderSummary, OrdersRepoOptions } from './orders-repo.js';

const money = z.object({ amountCents: z.number().int(), currency: z.string() });
const order = z.object({
  id: z.string(),
  customerId: z.string(),
  status: z.enum(ORDER_STATUSES),
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
const orderSummary = order.omit({ items: true });

/** Options of {@link ordersTools}. */
export interface OrdersToolsOptions extends OrdersRepoOptions {
  /** Key of a refund called without an idempotency key (default: a random UUID). */
  newIdempotencyKey?: () => string;
}

/** The orders tools over one database. */
export function ordersTools(db: OrdersDb, options: OrdersToolsOptions = {}) {
  const repo = new OrdersRepo(db, options);
  const newIdempotencyKey = options.newIdempotencyKey ?? randomUUID;

  const getOrder = defineTool({
    name: 'get_order',
    title: 'Look up an order',
    description: 'Look up one order by id (e.g. ord_1001), with its items and refunded amount.',
    input: z.object({ orderId: z.string().regex(/^ord_\d+$/, 'an order id looks like ord_1001') }),
    output: order,
    errors: { ORDER_NOT_FOUND: { retryable: false, description: 'No order has this id' } },
    annotations: { readOnly: true },
    handler: ({ orderId }, ctx) => {
      const found = repo.getOrder(orderId);
      return found ? toOrder(found) : ctx.fail('ORDER_NOT_FOUND', `No order ${orderId}`);
    },
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
    output: z.object({ orders: z.array(orderSummary) }),
    annotations: { readOnly: true },
    handler: ({ customerId, status, limit }) => {
      try {
        const page = repo.listCustomerOrders(customerId, { limit, ...(status ? { status } : {}) });
        return { orders: page.orders.map(toSummary) };
      } catch (error) {
        // The tool declares no errors: an unknown customer simply has no orders.
        if (error instanceof OrdersError && error.code === 'CUSTOMER_NOT_FOUND') {
          return { orders: [] };
        }
        throw asInvalidInput(error);
      }
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
      // The gateway's idempotency key, scoped to the caller as the SDK's own store scopes it,
      // when there is one; else each call is its own refund. The SDK's store answers most
      // repeats; the key in the database also covers repeats it no longer remembers.
      const idempotencyKey = ctx.idempotencyKey
        ? `${ctx.caller?.sub ?? ''}:${ctx.idempotencyKey}`
        : newIdempotencyKey();
      try {
        const { refund, order: after } = repo.refundOrder({
          orderId,
          reason,
          idempotencyKey,
          ...(amountCents !== undefined ? { amountCents } : {}),
        });
        return {
          refundId: refund.id,
          orderId: refund.orderId,
          amountCents: refund.amountCents,
          status: after.status,
        };
      } catch (error) {
        if (!(error instanceof OrdersError)) throw error;
        switch (error.code) {
          case 'ORDER_NOT_FOUND':
          case 'ORDER_NOT_REFUNDABLE':
            return ctx.fail(error.code, error.message);
          case 'REFUND_EXCEEDS_BALANCE':
            return ctx.fail(error.code, error.message, {
              leftCents: error.details.balanceCents,
            });
          default:
            throw asInvalidInput(error);
        }
      }
    },
  });

  return [getOrder, listCustomerOrders, refundOrder];
}

function toSummary(o: OrderSummary): z.input<typeof orderSummary> {
  return {
    id: o.id,
    customerId: o.customerId,
    status: o.status,
    total: { amountCents: o.totalCents, currency: o.currency },
    refundedCents: o.refundedCents,
    createdAt: o.createdAt,
  };
}

function toOrder(o: RepoOrder): z.input<typeof order> {
  return { ...toSummary(o), items: o.items };
}

/**
 * The repository's argument errors (a key reused with other arguments, a blank reason) are the
 * caller's to fix, as the SDK reports a key reused with other arguments: INVALID_INPUT.
 * Anything else is left to become INTERNAL.
 */
function asInvalidInput(error: unknown): unknown {
  if (
    error instanceof OrdersError &&
    (error.code === 'INVALID_ARGUMENT' || error.code === 'IDEMPOTENCY_KEY_CONFLICT')
  ) {
    return new ToolSdkError('INVALID_INPUT', error.message, { cause: error });
  }
  return error;
}
