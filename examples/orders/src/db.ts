import Database from 'better-sqlite3';

/** A better-sqlite3 connection to the orders database. */
export type OrdersDb = Database.Database;

/** Every status an order can be in. */
export const ORDER_STATUSES = [
  'pending',
  'paid',
  'shipped',
  'delivered',
  'refunded',
  'cancelled',
] as const;

/** The status of an order. */
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** Options of {@link openOrdersDb}. */
export interface OpenOrdersDbOptions {
  /** Seed the demo data when the database is empty (default true). */
  seed?: boolean;
}

/**
 * Open the orders database at `path` (`:memory:` for a private in-memory one), create the schema
 * if missing and, when it has no customers yet, seed deterministic demo data. Files use WAL.
 */
export function openOrdersDb(path = ':memory:', options: OpenOrdersDbOptions = {}): OrdersDb {
  const db = new Database(path);
  db.pragma('foreign_keys = ON');
  if (path !== ':memory:' && path !== '') {
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
  }
  db.exec(SCHEMA);
  const { n } = db.prepare('SELECT COUNT(*) AS n FROM customers').get() as { n: number };
  if (n === 0 && options.seed !== false) seed(db);
  return db;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS customers (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
  id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL REFERENCES customers (id),
  status TEXT NOT NULL CHECK (status IN (${ORDER_STATUSES.map((s) => `'${s}'`).join(', ')})),
  total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
  currency TEXT NOT NULL CHECK (length(currency) = 3),
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS order_items (
  id INTEGER PRIMARY KEY,
  order_id TEXT NOT NULL REFERENCES orders (id),
  sku TEXT NOT NULL,
  name TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  unit_cents INTEGER NOT NULL CHECK (unit_cents >= 0)
);
CREATE INDEX IF NOT EXISTS order_items_by_order ON order_items (order_id);
CREATE TABLE IF NOT EXISTS refunds (
  id TEXT PRIMARY KEY,
  order_id TEXT NOT NULL REFERENCES orders (id),
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  reason TEXT NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_by_order ON refunds (order_id);
`;

const CUSTOMERS = [
  ['Amélie Laurent', 'amelie.laurent@example.com', 'EUR'],
  ['Jonas Becker', 'jonas.becker@example.com', 'EUR'],
  ['Priya Natarajan', 'priya.natarajan@example.com', 'GBP'],
  ['Marcus Reed', 'marcus.reed@example.com', 'USD'],
  ['Sofia Rossi', 'sofia.rossi@example.com', 'EUR'],
  ['Daniel Okafor', 'daniel.okafor@example.com', 'USD'],
  ['Hannah Clarke', 'hannah.clarke@example.com', 'GBP'],
  ['Lucas Martín', 'lucas.martin@example.com', 'EUR'],
] as const;

const PRODUCTS = [
  ['SKU-MUG', 'Stoneware mug', 1450],
  ['SKU-TEE', 'Organic cotton tee', 2400],
  ['SKU-CAP', 'Canvas cap', 1900],
  ['SKU-BAG', 'Waxed tote bag', 3600],
  ['SKU-PEN', 'Fountain pen', 5200],
  ['SKU-NTB', 'Dot-grid notebook', 1200],
  ['SKU-BTL', 'Insulated bottle', 2900],
] as const;

/** Status by order number; cycles so every customer gets a mix. */
const STATUS_CYCLE: readonly OrderStatus[] = [
  'pending',
  'paid',
  'shipped',
  'delivered',
  'delivered', // with a partial refund
  'refunded',
  'shipped',
  'delivered',
  'cancelled',
  'paid',
];

const ORDER_COUNT = 40;
const DAY_MS = 86_400_000;
const FIRST_ORDER_AT = Date.UTC(2026, 0, 5, 9, 15);

/** Insert 8 customers and 40 orders with items (and the refunds of refunded orders). */
function seed(db: OrdersDb): void {
  const customer = db.prepare(
    'INSERT INTO customers (id, name, email, created_at) VALUES (?, ?, ?, ?)',
  );
  const order = db.prepare(
    'INSERT INTO orders (id, customer_id, status, total_cents, currency, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const item = db.prepare(
    'INSERT INTO order_items (order_id, sku, name, quantity, unit_cents) VALUES (?, ?, ?, ?, ?)',
  );
  const refund = db.prepare(
    'INSERT INTO refunds (id, order_id, amount_cents, reason, idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const iso = (ms: number) => new Date(ms).toISOString();

  db.transaction(() => {
    CUSTOMERS.forEach(([name, email], i) => {
      customer.run(customerId(i), name, email, iso(FIRST_ORDER_AT - (60 - i * 5) * DAY_MS));
    });
    let refunds = 0;
    for (let n = 0; n < ORDER_COUNT; n++) {
      const id = `ord_${1001 + n}`;
      const c = n % CUSTOMERS.length;
      const currency = CUSTOMERS[c]![2];
      const status = STATUS_CYCLE[n % STATUS_CYCLE.length]!;
      const createdAt = FIRST_ORDER_AT + n * 2 * DAY_MS + ((n * 137) % 600) * 60_000;
      const lines = Array.from({ length: 1 + (n % 3) }, (_, k) => ({
        product: PRODUCTS[(n * 3 + k * 2) % PRODUCTS.length]!,
        quantity: 1 + ((n + k) % 2),
      }));
      const total = lines.reduce((sum, l) => sum + l.quantity * l.product[2], 0);
      order.run(id, customerId(c), status, total, currency, iso(createdAt));
      for (const { product, quantity } of lines)
        item.run(id, product[0], product[1], quantity, product[2]);

      const refundAt = iso(createdAt + 6 * DAY_MS);
      if (status === 'refunded') {
        refund.run(
          refundId(++refunds),
          id,
          total,
          'Customer returned the order',
          `seed:${id}`,
          refundAt,
        );
      } else if (n % STATUS_CYCLE.length === 4) {
        const unit = lines[0]!.product[2];
        const amount = total > unit ? unit : Math.floor(total / 2); // always partial
        refund.run(
          refundId(++refunds),
          id,
          amount,
          'One item arrived damaged',
          `seed:${id}`,
          refundAt,
        );
      }
    }
  })();
}

const customerId = (i: number) => `cus_${String(i + 1).padStart(3, '0')}`;
const refundId = (i: number) => `rf_seed${String(i).padStart(4, '0')}`;
