import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ORDER_STATUSES, openOrdersDb } from './db.js';
import type { OrdersDb } from './db.js';

const dump = (db: OrdersDb) =>
  ['customers', 'orders', 'order_items', 'refunds'].map((t) =>
    db.prepare(`SELECT * FROM ${t} ORDER BY 1`).all(),
  );

describe('openOrdersDb', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('seeds 8 customers and 40 orders with items, in every status', () => {
    const db = openOrdersDb();
    const count = (table: string) =>
      (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
    expect(count('customers')).toBe(8);
    expect(count('orders')).toBe(40);
    expect(count('order_items')).toBeGreaterThanOrEqual(40);

    const statuses = db.prepare('SELECT DISTINCT status FROM orders').pluck().all();
    expect([...statuses].sort()).toEqual([...ORDER_STATUSES].sort());
    const mismatched = db
      .prepare(
        `SELECT o.id FROM orders o
         WHERE o.total_cents != (SELECT SUM(quantity * unit_cents) FROM order_items WHERE order_id = o.id)`,
      )
      .all();
    expect(mismatched).toEqual([]);
    const ids = db.prepare('SELECT id FROM orders ORDER BY id').pluck().all();
    expect(ids[0]).toBe('ord_1001');
    expect(ids.at(-1)).toBe('ord_1040');
  });

  it('seeds the same data every time', () => {
    expect(dump(openOrdersDb())).toEqual(dump(openOrdersDb()));
  });

  it('refunded orders carry refunds for their whole total', () => {
    const db = openOrdersDb();
    const rows = db
      .prepare(
        `SELECT o.total_cents AS total, SUM(r.amount_cents) AS refunded FROM orders o
         JOIN refunds r ON r.order_id = o.id WHERE o.status = 'refunded' GROUP BY o.id`,
      )
      .all() as { total: number; refunded: number }[];
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row.refunded).toBe(row.total);
  });

  it('skips seeding when asked', () => {
    const db = openOrdersDb(':memory:', { seed: false });
    expect(db.prepare('SELECT COUNT(*) AS n FROM orders').get()).toEqual({ n: 0 });
  });

  it('uses WAL for files and seeds only an empty database', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keel-orders-'));
    dirs.push(dir);
    const path = join(dir, 'orders.db');
    const first = openOrdersDb(path);
    expect(first.pragma('journal_mode', { simple: true })).toBe('wal');
    first.prepare("UPDATE orders SET status = 'cancelled' WHERE id = 'ord_1002'").run();
    first.close();

    const again = openOrdersDb(path);
    expect(again.prepare('SELECT COUNT(*) AS n FROM orders').get()).toEqual({ n: 40 });
    expect(again.prepare("SELECT status FROM orders WHERE id = 'ord_1002'").pluck().get()).toBe(
      'cancelled',
    );
    again.close();
  });
});
