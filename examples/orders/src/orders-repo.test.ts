import { describe, expect, it } from 'vitest';
import { openOrdersDb } from './db.js';
import { OrdersError, OrdersRepo } from './orders-repo.js';
import type { OrdersErrorCode } from './orders-repo.js';

const NOW = new Date('2026-11-28T12:00:00.000Z');

function setup() {
  const db = openOrdersDb();
  let n = 0;
  const repo = new OrdersRepo(db, { now: () => NOW, newRefundId: () => `rf_test${++n}` });
  const refundCount = () =>
    (db.prepare('SELECT COUNT(*) AS n FROM refunds').get() as { n: number }).n;
  return { db, repo, refundCount };
}

function expectError(fn: () => unknown, code: OrdersErrorCode): OrdersError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(OrdersError);
    expect((error as OrdersError).code).toBe(code);
    return error as OrdersError;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

describe('getOrder', () => {
  it('returns an order with its items and refunds', () => {
    const { repo } = setup();
    const order = repo.getOrder('ord_1005')!;
    expect(order).toMatchObject({ id: 'ord_1005', customerId: 'cus_005', status: 'delivered' });
    expect(order.items.length).toBeGreaterThan(0);
    expect(order.totalCents).toBe(order.items.reduce((s, i) => s + i.quantity * i.unitCents, 0));
    expect(order.refunds).toHaveLength(1);
    expect(order.refunds[0]).toMatchObject({ orderId: 'ord_1005', currency: order.currency });
    expect(order.refundedCents).toBe(order.refunds[0]!.amountCents);
    expect(order.refundedCents).toBeLessThan(order.totalCents);
  });

  it('returns undefined for an unknown id', () => {
    expect(setup().repo.getOrder('ord_9999')).toBeUndefined();
  });
});

describe('listCustomerOrders', () => {
  it('lists newest first and pages with a cursor to the end', () => {
    const { repo } = setup();
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = repo.listCustomerOrders('cus_001', { limit: 2, ...(cursor ? { cursor } : {}) });
      expect(page.orders.length).toBeLessThanOrEqual(2);
      seen.push(...page.orders.map((o) => o.createdAt + ' ' + o.id));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(5);
    expect(seen).toEqual([...seen].sort().reverse());
    expect(new Set(seen).size).toBe(5);
  });

  it('returns no cursor when everything fits', () => {
    const page = setup().repo.listCustomerOrders('cus_002', { limit: 5 });
    expect(page.orders).toHaveLength(5);
    expect(page.nextCursor).toBeNull();
    expect(page.orders.every((o) => o.customerId === 'cus_002')).toBe(true);
  });

  it('filters by status', () => {
    const { repo } = setup();
    const page = repo.listCustomerOrders('cus_001', { status: 'pending' });
    expect(page.orders.length).toBeGreaterThan(0);
    expect(page.orders.every((o) => o.status === 'pending')).toBe(true);
    expect(repo.listCustomerOrders('cus_001', { status: 'refunded' }).orders).toEqual([]);
  });

  it('rejects unknown customers, bad limits, statuses and cursors', () => {
    const { repo } = setup();
    expectError(() => repo.listCustomerOrders('cus_999'), 'CUSTOMER_NOT_FOUND');
    expectError(() => repo.listCustomerOrders('cus_001', { limit: 0 }), 'INVALID_ARGUMENT');
    expectError(() => repo.listCustomerOrders('cus_001', { limit: 2.5 }), 'INVALID_ARGUMENT');
    expectError(
      () => repo.listCustomerOrders('cus_001', { status: 'lost' as never }),
      'INVALID_ARGUMENT',
    );
    expectError(
      () => repo.listCustomerOrders('cus_001', { cursor: 'not-a-cursor' }),
      'INVALID_ARGUMENT',
    );
  });
});

describe('refundOrder', () => {
  it('refunds the whole balance by default and marks the order refunded', () => {
    const { repo } = setup();
    const before = repo.getOrder('ord_1002')!;
    expect(before.status).toBe('paid');
    const result = repo.refundOrder({
      orderId: 'ord_1002',
      reason: 'Changed my mind',
      idempotencyKey: 'k-1',
    });
    expect(result.replayed).toBe(false);
    expect(result.refund).toEqual({
      id: 'rf_test1',
      orderId: 'ord_1002',
      amountCents: before.totalCents,
      currency: before.currency,
      reason: 'Changed my mind',
      idempotencyKey: 'k-1',
      createdAt: NOW.toISOString(),
    });
    expect(result.order).toMatchObject({ status: 'refunded', refundedCents: before.totalCents });
    expect(repo.getOrder('ord_1002')!.status).toBe('refunded');
  });

  it('refunds in parts, keeping the status until nothing is left', () => {
    const { repo } = setup();
    const total = repo.getOrder('ord_1003')!.totalCents;
    const first = repo.refundOrder({
      orderId: 'ord_1003',
      amountCents: 500,
      reason: 'Late delivery',
      idempotencyKey: 'p-1',
    });
    expect(first.order).toMatchObject({ status: 'shipped', refundedCents: 500 });
    const rest = repo.refundOrder({
      orderId: 'ord_1003',
      reason: 'Returned',
      idempotencyKey: 'p-2',
    });
    expect(rest.refund.amountCents).toBe(total - 500);
    expect(rest.order).toMatchObject({ status: 'refunded', refundedCents: total });
    expect(rest.order.refunds.map((r) => r.id)).toEqual(['rf_test1', 'rf_test2']);
  });

  it('never refunds twice for one idempotency key', () => {
    const { repo, refundCount } = setup();
    const input = {
      orderId: 'ord_1004',
      amountCents: 300,
      reason: 'Scratched',
      idempotencyKey: 'k-2',
    };
    const first = repo.refundOrder(input);
    const count = refundCount();
    const again = repo.refundOrder(input);
    expect(again.replayed).toBe(true);
    expect(again.refund).toEqual(first.refund);
    expect(again.order.refundedCents).toBe(300);
    expect(refundCount()).toBe(count);
    // Without an amount, a replay matches whatever the first call refunded.
    expect(repo.refundOrder({ ...input, amountCents: undefined }).replayed).toBe(true);
  });

  it('rejects a key reused for another order or amount', () => {
    const { repo } = setup();
    repo.refundOrder({ orderId: 'ord_1004', amountCents: 300, reason: 'x', idempotencyKey: 'k-3' });
    const other = { reason: 'x', idempotencyKey: 'k-3' };
    expectError(
      () => repo.refundOrder({ ...other, orderId: 'ord_1007', amountCents: 300 }),
      'IDEMPOTENCY_KEY_CONFLICT',
    );
    expectError(
      () => repo.refundOrder({ ...other, orderId: 'ord_1004', amountCents: 301 }),
      'IDEMPOTENCY_KEY_CONFLICT',
    );
  });

  it('reports an unknown order', () => {
    const { repo } = setup();
    const error = expectError(
      () => repo.refundOrder({ orderId: 'ord_9999', reason: 'x', idempotencyKey: 'k' }),
      'ORDER_NOT_FOUND',
    );
    expect(error.details).toEqual({ orderId: 'ord_9999' });
  });

  it.each([
    ['pending', 'ord_1001'],
    ['refunded', 'ord_1006'],
    ['cancelled', 'ord_1009'],
  ])('does not refund a %s order', (status, orderId) => {
    const { repo, refundCount } = setup();
    expect(repo.getOrder(orderId)!.status).toBe(status);
    const count = refundCount();
    const error = expectError(
      () => repo.refundOrder({ orderId, reason: 'x', idempotencyKey: `k-${orderId}` }),
      'ORDER_NOT_REFUNDABLE',
    );
    expect(error.details).toMatchObject({ status });
    expect(refundCount()).toBe(count);
  });

  it('does not refund more than the balance, and writes nothing when it fails', () => {
    const { repo, refundCount } = setup();
    const order = repo.getOrder('ord_1005')!; // partly refunded in the seed
    const balance = order.totalCents - order.refundedCents;
    const count = refundCount();
    const error = expectError(
      () =>
        repo.refundOrder({
          orderId: 'ord_1005',
          amountCents: balance + 1,
          reason: 'x',
          idempotencyKey: 'k-4',
        }),
      'REFUND_EXCEEDS_BALANCE',
    );
    expect(error.details).toEqual({ balanceCents: balance, requestedCents: balance + 1 });
    expect(refundCount()).toBe(count);
    expect(repo.getOrder('ord_1005')).toEqual(order);
    // The key was not consumed by the failed attempt.
    const ok = repo.refundOrder({ orderId: 'ord_1005', reason: 'x', idempotencyKey: 'k-4' });
    expect(ok.refund.amountCents).toBe(balance);
  });

  it('validates its input', () => {
    const { repo } = setup();
    const base = { orderId: 'ord_1002', reason: 'x', idempotencyKey: 'k' };
    expectError(() => repo.refundOrder({ ...base, amountCents: 0 }), 'INVALID_ARGUMENT');
    expectError(() => repo.refundOrder({ ...base, amountCents: 1.5 }), 'INVALID_ARGUMENT');
    expectError(() => repo.refundOrder({ ...base, reason: '  ' }), 'INVALID_ARGUMENT');
    expectError(() => repo.refundOrder({ ...base, idempotencyKey: '' }), 'INVALID_ARGUMENT');
  });
});
