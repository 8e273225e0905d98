import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';

/** Open (and on first use create and seed) the orders database. `:memory:` for tests. */
export function openOrdersDb(path = ':memory:'): Db {
  const db = new Database(path);
  if (path !== ':memory:') db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS customers (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS orders (
      id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
      status TEXT NOT NULL, total_cents INTEGER NOT NULL, currency TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS orders_by_customer ON orders(customer_id, created_at DESC);
    CREATE TABLE IF NOT EXISTS order_items (
      order_id TEXT NOT NULL REFERENCES orders(id), sku TEXT NOT NULL, name TEXT NOT NULL,
      quantity INTEGER NOT NULL, unit_cents INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS refunds (
      id TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders(id), amount_cents INTEGER NOT NULL,
      reason TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
  `);
  const count = db.prepare('SELECT COUNT(*) AS n FROM orders').get() as { n: number };
  if (count.n === 0) seed(db);
  return db;
}

const PRODUCTS = [
  ['SKU-MUG', 'Ceramic mug', 1450],
  ['SKU-TEE', 'Organic cotton tee', 2400],
  ['SKU-CAP', 'Canvas cap', 1900],
  ['SKU-BAG', 'Tote bag', 1600],
  ['SKU-PEN', 'Fountain pen', 5200],
] as const;
const STATUSES = ['pending', 'paid', 'shipped', 'delivered', 'delivered', 'cancelled'] as const;
const NAMES = [
  'Ada Lovelace',
  'Grace Hopper',
  'Alan Turing',
  'Edsger Dijkstra',
  'Barbara Liskov',
  'Ken Thompson',
  'Frances Allen',
  'Donald Knuth',
];

/** Deterministic seed data: 8 customers, 40 orders. */
function seed(db: Db): void {
  const insertCustomer = db.prepare('INSERT INTO customers (id, name, email) VALUES (?, ?, ?)');
  const insertOrder = db.prepare(
    'INSERT INTO orders (id, customer_id, status, total_cents, currency, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const insertItem = db.prepare(
    'INSERT INTO order_items (order_id, sku, name, quantity, unit_cents) VALUES (?, ?, ?, ?, ?)',
  );
  db.transaction(() => {
    NAMES.forEach((name, i) => {
      const id = `cus_${String(i + 1).padStart(3, '0')}`;
      insertCustomer.run(id, name, `${name.split(' ')[0]!.toLowerCase()}@example.com`);
    });
    for (let n = 0; n < 40; n++) {
      const id = `ord_${1001 + n}`;
      const customer = `cus_${String((n % 8) + 1).padStart(3, '0')}`;
      const items = [PRODUCTS[n % 5]!, PRODUCTS[(n * 3 + 1) % 5]!].slice(0, 1 + (n % 2));
      const qty = 1 + (n % 3);
      const total = items.reduce((sum, [, , unit]) => sum + qty * unit, 0);
      const created = new Date(Date.UTC(2026, 9, 1 + n, 10, n)).toISOString();
      insertOrder.run(id, customer, STATUSES[n % STATUSES.length]!, total, 'EUR', created);
      for (const [sku, name, unit] of items) insertItem.run(id, sku, name, qty, unit);
    }
  })();
}
