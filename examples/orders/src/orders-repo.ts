import { randomBytes } from 'node:crypto';
import type { Statement, Transaction } from 'better-sqlite3';
import { ORDER_STATUSES } from './db.js';
import type { OrderStatus, OrdersDb } from './db.js';

/** One line of an order. */
export interface OrderItem {
  sku: string;
  name: string;
  quantity: number;
  unitCents: number;
}

/** Money given back on an order. */
export interface Refund {
  id: string;
  orderId: string;
  amountCents: number;
  currency: string;
  reason: string;
  idempotencyKey: string;
  createdAt: string;
}

/** An order without its lines, as listed. */
export interface OrderSummary {
  id: string;
  customerId: string;
  status: OrderStatus;
  totalCents: number;
  /** Sum of all refunds so far. */
  refundedCents: number;
  currency: string;
  createdAt: string;
}

/** An order with its items and refunds. */
export interface Order extends OrderSummary {
  items: OrderItem[];
  refunds: Refund[];
}

/** Options of {@link OrdersRepo.listCustomerOrders}. */
export interface ListOrdersOptions {
  status?: OrderStatus;
  /** Page size, 1 to 100 (default 10). */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

/** One page of a customer's orders, newest first. */
export interface OrderPage {
  orders: OrderSummary[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** Input of {@link OrdersRepo.refundOrder}. */
export interface RefundInput {
  orderId: string;
  /** Defaults to the whole remaining balance. */
  amountCents?: number;
  reason: string;
  /** The same key never refunds twice: a repeat returns the first refund. */
  idempotencyKey: string;
}

/** Outcome of {@link OrdersRepo.refundOrder}. */
export interface RefundResult {
  refund: Refund;
  /** The order after the refund. */
  order: Order;
  /** True when the idempotency key had already been used and nothing new was refunded. */
  replayed: boolean;
}

/** Codes of {@link OrdersError}. */
export type OrdersErrorCode =
  | 'ORDER_NOT_FOUND'
  | 'CUSTOMER_NOT_FOUND'
  | 'ORDER_NOT_REFUNDABLE'
  | 'REFUND_EXCEEDS_BALANCE'
  | 'IDEMPOTENCY_KEY_CONFLICT'
  | 'INVALID_ARGUMENT';

/** A domain error the caller can act on; `code` is stable, `message` is for humans. */
export class OrdersError extends Error {
  override readonly name = 'OrdersError';
  constructor(
    readonly code: OrdersErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** Options of {@link OrdersRepo}. */
export interface OrdersRepoOptions {
  /** Clock for refund timestamps (default: the system clock). */
  now?: () => Date;
  /** Id generator for new refunds (default: `rf_` + 12 random hex digits). */
  newRefundId?: () => string;
}

const REFUNDABLE: ReadonlySet<OrderStatus> = new Set(['paid', 'shipped', 'delivered']);
const MAX_LIMIT = 100;

interface OrderRow {
  id: string;
  customer_id: string;
  status: OrderStatus;
  total_cents: number;
  refunded_cents: number;
  currency: string;
  created_at: string;
}

interface RefundRow {
  id: string;
  order_id: string;
  amount_cents: number;
  currency: string;
  reason: string;
  idempotency_key: string;
  created_at: string;
}

const ORDER_COLUMNS = `o.id, o.customer_id, o.status, o.total_cents, o.currency, o.created_at,
  (SELECT COALESCE(SUM(r.amount_cents), 0) FROM refunds r WHERE r.order_id = o.id) AS refunded_cents`;
const REFUND_COLUMNS = `r.id, r.order_id, r.amount_cents, o.currency, r.reason, r.idempotency_key, r.created_at`;

/** Reads and refunds orders in a database opened by `openOrdersDb`. */
export class OrdersRepo {
  private readonly now: () => Date;
  private readonly newRefundId: () => string;
  private readonly stmt: {
    order: Statement<[string], OrderRow>;
    items: Statement<[string], OrderItem>;
    refunds: Statement<[string], RefundRow>;
    refundByKey: Statement<[string], RefundRow>;
    customerExists: Statement<[string], { found: 1 }>;
    page: Statement<[PageParams], OrderRow>;
    insertRefund: Statement<[string, string, number, string, string, string]>;
    setStatus: Statement<[OrderStatus, string]>;
  };
  private readonly refundTx: Transaction<(input: RefundInput) => RefundResult>;

  constructor(db: OrdersDb, options: OrdersRepoOptions = {}) {
    this.now = options.now ?? (() => new Date());
    this.newRefundId = options.newRefundId ?? (() => `rf_${randomBytes(6).toString('hex')}`);
    this.stmt = {
      order: db.prepare(`SELECT ${ORDER_COLUMNS} FROM orders o WHERE o.id = ?`),
      items: db.prepare(
        'SELECT sku, name, quantity, unit_cents AS unitCents FROM order_items WHERE order_id = ? ORDER BY id',
      ),
      refunds: db.prepare(
        `SELECT ${REFUND_COLUMNS} FROM refunds r JOIN orders o ON o.id = r.order_id
         WHERE r.order_id = ? ORDER BY r.created_at, r.id`,
      ),
      refundByKey: db.prepare(
        `SELECT ${REFUND_COLUMNS} FROM refunds r JOIN orders o ON o.id = r.order_id
         WHERE r.idempotency_key = ?`,
      ),
      customerExists: db.prepare('SELECT 1 AS found FROM customers WHERE id = ?'),
      page: db.prepare(
        `SELECT ${ORDER_COLUMNS} FROM orders o
         WHERE o.customer_id = @customerId
           AND (@status IS NULL OR o.status = @status)
           AND (@afterCreatedAt IS NULL OR (o.created_at, o.id) < (@afterCreatedAt, @afterId))
         ORDER BY o.created_at DESC, o.id DESC
         LIMIT @limit`,
      ),
      insertRefund: db.prepare(
        `INSERT INTO refunds (id, order_id, amount_cents, reason, idempotency_key, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      setStatus: db.prepare('UPDATE orders SET status = ? WHERE id = ?'),
    };
    this.refundTx = db.transaction((input: RefundInput) => this.refundInTx(input));
  }

  /** One order with its items and refunds, or undefined when no order has this id. */
  getOrder(orderId: string): Order | undefined {
    const row = this.stmt.order.get(orderId);
    if (!row) return undefined;
    return {
      ...toSummary(row),
      items: this.stmt.items.all(orderId),
      refunds: this.stmt.refunds.all(orderId).map(toRefund),
    };
  }

  /**
   * A page of a customer's orders, newest first, optionally with one status.
   * @throws {OrdersError} CUSTOMER_NOT_FOUND, or INVALID_ARGUMENT for a bad limit, status or cursor.
   */
  listCustomerOrders(customerId: string, options: ListOrdersOptions = {}): OrderPage {
    const { status, limit = 10, cursor } = options;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw new OrdersError('INVALID_ARGUMENT', `limit must be an integer from 1 to ${MAX_LIMIT}`);
    }
    if (status !== undefined && !(ORDER_STATUSES as readonly string[]).includes(status)) {
      throw new OrdersError('INVALID_ARGUMENT', `Unknown status ${String(status)}`);
    }
    if (!this.stmt.customerExists.get(customerId)) {
      throw new OrdersError('CUSTOMER_NOT_FOUND', `No customer ${customerId}`, { customerId });
    }
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    const rows = this.stmt.page.all({
      customerId,
      status: status ?? null,
      afterCreatedAt: after?.createdAt ?? null,
      afterId: after?.id ?? null,
      limit: limit + 1,
    });
    const orders = rows.slice(0, limit).map(toSummary);
    const last = orders.at(-1);
    return { orders, nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
  }

  /**
   * Refund an order in one SQLite transaction: the whole remaining balance by default, or
   * `amountCents` of it. The order becomes `refunded` once nothing is left. A repeated
   * `idempotencyKey` returns the first refund with `replayed: true` and refunds nothing.
   * @throws {OrdersError} ORDER_NOT_FOUND, ORDER_NOT_REFUNDABLE (pending, cancelled or fully
   * refunded), REFUND_EXCEEDS_BALANCE, IDEMPOTENCY_KEY_CONFLICT (key used for another order or
   * amount), INVALID_ARGUMENT.
   */
  refundOrder(input: RefundInput): RefundResult {
    // IMMEDIATE takes the write lock up front, so another connection cannot refund in between.
    return this.refundTx.immediate(input);
  }

  private refundInTx({ orderId, amountCents, reason, idempotencyKey }: RefundInput): RefundResult {
    if (amountCents !== undefined && (!Number.isSafeInteger(amountCents) || amountCents <= 0)) {
      throw new OrdersError('INVALID_ARGUMENT', 'amountCents must be a positive integer');
    }
    if (!reason.trim()) throw new OrdersError('INVALID_ARGUMENT', 'A reason is required');
    if (!idempotencyKey)
      throw new OrdersError('INVALID_ARGUMENT', 'An idempotency key is required');

    const previous = this.stmt.refundByKey.get(idempotencyKey);
    if (previous) {
      const refund = toRefund(previous);
      if (
        refund.orderId !== orderId ||
        (amountCents ?? refund.amountCents) !== refund.amountCents
      ) {
        throw new OrdersError(
          'IDEMPOTENCY_KEY_CONFLICT',
          `Idempotency key already used for a refund of ${refund.amountCents} cents on ${refund.orderId}`,
          { refundId: refund.id },
        );
      }
      return { refund, order: this.getOrder(orderId)!, replayed: true };
    }

    const order = this.getOrder(orderId);
    if (!order) throw new OrdersError('ORDER_NOT_FOUND', `No order ${orderId}`, { orderId });
    const balanceCents = order.totalCents - order.refundedCents;
    if (!REFUNDABLE.has(order.status) || balanceCents <= 0) {
      throw new OrdersError(
        'ORDER_NOT_REFUNDABLE',
        `Order ${orderId} is ${order.status} and cannot be refunded`,
        { status: order.status, balanceCents },
      );
    }
    const amount = amountCents ?? balanceCents;
    if (amount > balanceCents) {
      throw new OrdersError(
        'REFUND_EXCEEDS_BALANCE',
        `At most ${balanceCents} cents are left to refund on ${orderId}`,
        { balanceCents, requestedCents: amount },
      );
    }

    const id = this.newRefundId();
    const createdAt = this.now().toISOString();
    this.stmt.insertRefund.run(id, orderId, amount, reason, idempotencyKey, createdAt);
    if (amount === balanceCents) this.stmt.setStatus.run('refunded', orderId);
    const after = this.getOrder(orderId)!;
    const refund = after.refunds.find((r) => r.id === id)!;
    return { refund, order: after, replayed: false };
  }
}

interface PageParams {
  customerId: string;
  status: OrderStatus | null;
  afterCreatedAt: string | null;
  afterId: string | null;
  limit: number;
}

function toSummary(row: OrderRow): OrderSummary {
  return {
    id: row.id,
    customerId: row.customer_id,
    status: row.status,
    totalCents: row.total_cents,
    refundedCents: row.refunded_cents,
    currency: row.currency,
    createdAt: row.created_at,
  };
}

function toRefund(row: RefundRow): Refund {
  return {
    id: row.id,
    orderId: row.order_id,
    amountCents: row.amount_cents,
    currency: row.currency,
    reason: row.reason,
    idempotencyKey: row.idempotency_key,
    createdAt: row.created_at,
  };
}

/** Cursors are opaque to callers: base64url of `[createdAt, id]` of the last order shown. */
function encodeCursor(order: OrderSummary): string {
  return Buffer.from(JSON.stringify([order.createdAt, order.id])).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === 'string' &&
      typeof value[1] === 'string'
    ) {
      return { createdAt: value[0], id: value[1] };
    }
  } catch {
    // fall through
  }
  throw new OrdersError('INVALID_ARGUMENT', 'cursor is not one returned by listCustomerOrders');
}
