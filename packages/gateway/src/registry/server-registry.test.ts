import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedisClient, redisReady } from '@keel/tool-sdk';
import { serverSchema } from '../config/gateway-config.js';
import { GatewayError } from '../errors/gateway-error.js';
import { createServerRegistry } from './server-registry.js';
import type { RegistryChange, ServerRegistry } from './server-registry.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const orders = serverSchema.parse({ id: 'orders', urls: ['http://127.0.0.1:7101/mcp'] });

/** Resolves with the first change matching `match`, or rejects after `timeoutMs`. */
function nextChange(
  registry: ServerRegistry,
  match: (event: RegistryChange) => boolean,
  timeoutMs = 2_000,
): Promise<RegistryChange> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching registry change within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = registry.onChange((event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      off();
      resolve(event);
    });
  });
}

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!GatewayError.isInstance(error))
    throw new Error(`expected a GatewayError, got ${String(error)}`);
  return error;
}

describe('server registry (memory)', () => {
  it('lists static servers first and registers, updates and deregisters others', async () => {
    const registry = createServerRegistry({ staticServers: [orders] });
    await registry.start();
    const events: RegistryChange[] = [];
    registry.onChange((event) => events.push(event));

    const billing = await registry.register({ id: 'billing', urls: ['http://127.0.0.1:7102/mcp'] });
    expect(billing.auth).toEqual({ mode: 'keel-jwt' }); // defaults applied
    await registry.register({ id: 'aaa', urls: ['http://127.0.0.1:7103/mcp'] });
    expect(registry.list().map((s) => s.id)).toEqual(['orders', 'aaa', 'billing']);

    await registry.register({ id: 'billing', urls: ['http://127.0.0.1:7104/mcp'] });
    expect(registry.get('billing')?.urls).toEqual(['http://127.0.0.1:7104/mcp']);
    // The same config again changes nothing, so no event.
    await registry.register({ id: 'billing', urls: ['http://127.0.0.1:7104/mcp'] });

    expect(await registry.deregister('billing')).toBe(true);
    expect(await registry.deregister('billing')).toBe(false);
    expect(registry.get('billing')).toBeUndefined();
    expect(events).toEqual([
      { kind: 'registered', id: 'billing' },
      { kind: 'registered', id: 'aaa' },
      { kind: 'updated', id: 'billing' },
      { kind: 'deregistered', id: 'billing' },
    ]);
    await registry.close();
  });

  it('refuses to change or remove a static server (CONFLICT)', async () => {
    const registry = createServerRegistry({ staticServers: [orders] });
    const put = await rejection(registry.register({ id: 'orders', urls: ['http://x.test/mcp'] }));
    expect(put.code).toBe('CONFLICT');
    const del = await rejection(registry.deregister('orders'));
    expect(del.code).toBe('CONFLICT');
    expect(registry.get('orders')).toBe(orders);
    expect(registry.isStatic('orders')).toBe(true);
  });

  it('names the offending field of bad input (INVALID_INPUT)', async () => {
    const registry = createServerRegistry({ staticServers: [] });
    const badUrl = await rejection(registry.register({ id: 'billing', urls: ['ftp://x'] }));
    expect(badUrl.code).toBe('INVALID_INPUT');
    expect(badUrl.retryable).toBe(false);
    expect(badUrl.message).toContain('urls.0');
    expect(badUrl.details).toEqual({ issues: [expect.objectContaining({ path: 'urls.0' })] });

    const badId = await rejection(registry.register({ id: 'Bad_Id', urls: ['http://x.test/mcp'] }));
    expect(badId.message).toContain('id: a server id is');

    const deep = await rejection(
      registry.register({
        id: 'billing',
        urls: ['http://x.test/mcp'],
        policies: { retry: { maxAttempts: 0 } },
      }),
    );
    expect(deep.message).toContain('policies.retry.maxAttempts');

    const unknown = await rejection(
      registry.register({ id: 'billing', urls: ['http://x.test/mcp'], colour: 'red' }),
    );
    expect(unknown.message).toContain('colour');

    const notObject = await rejection(registry.register('billing'));
    expect(notObject.message).toContain('(server)');
    expect(registry.list()).toEqual([]);
  });

  it('rejects a config with the same static id twice', () => {
    expect(() => createServerRegistry({ staticServers: [orders, orders] })).toThrow(/twice/);
  });
});

describe('server registry (Redis, two replicas)', () => {
  const clients: Redis[] = [];
  const registries: ServerRegistry[] = [];
  const prefixes: string[] = [];

  async function replicas(count: number, prefix = `test:gw:${randomUUID()}`) {
    prefixes.push(prefix);
    const made: ServerRegistry[] = [];
    for (let i = 0; i < count; i++) {
      const redis = createRedisClient(REDIS_URL);
      clients.push(redis);
      await redisReady(redis);
      const registry = createServerRegistry({ staticServers: [orders], redis, keyPrefix: prefix });
      registries.push(registry);
      await registry.start();
      made.push(registry);
    }
    return { made, prefix };
  }

  afterEach(async () => {
    await Promise.all(registries.splice(0).map((r) => r.close()));
  });

  afterAll(async () => {
    const redis = clients[0];
    if (redis) for (const prefix of prefixes) await redis.del(`${prefix}:servers`);
    for (const client of clients) client.disconnect();
  });

  it('a register on one replica is seen by the other at once; so is a deregister', async () => {
    const {
      made: [a, b],
    } = await replicas(2);
    const seen = nextChange(b!, (e) => e.id === 'billing' && e.kind === 'registered');
    await a!.register({ id: 'billing', urls: ['http://127.0.0.1:7102/mcp'] });
    await seen;
    expect(b!.get('billing')?.urls).toEqual(['http://127.0.0.1:7102/mcp']);
    expect(b!.list().map((s) => s.id)).toEqual(['orders', 'billing']);

    const updated = nextChange(b!, (e) => e.id === 'billing' && e.kind === 'updated');
    await a!.register({ id: 'billing', urls: ['http://127.0.0.1:7105/mcp'] });
    await updated;
    expect(b!.get('billing')?.urls).toEqual(['http://127.0.0.1:7105/mcp']);

    const gone = nextChange(b!, (e) => e.id === 'billing' && e.kind === 'deregistered');
    expect(await a!.deregister('billing')).toBe(true);
    await gone;
    expect(b!.get('billing')).toBeUndefined();
    // The other replica deregistering it again finds nothing.
    expect(await b!.deregister('billing')).toBe(false);
  });

  it('a replica started later loads the registered servers from the hash', async () => {
    const {
      made: [a],
      prefix,
    } = await replicas(1);
    await a!.register({ id: 'billing', urls: ['http://127.0.0.1:7102/mcp'] });
    await a!.register({ id: 'search', urls: ['http://127.0.0.1:7103/mcp'] });
    await a!.deregister('search');
    const {
      made: [late],
    } = await replicas(1, prefix);
    expect(late!.list().map((s) => s.id)).toEqual(['orders', 'billing']);
    const stored = await clients[0]!.hget(`${prefix}:servers`, 'billing');
    expect(JSON.parse(stored!)).toMatchObject({ server: { id: 'billing' } });
  });

  it('concurrent writes from two replicas converge on the last one Redis applied', async () => {
    const {
      made: [a, b],
      prefix,
    } = await replicas(2);
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      const registry = i % 2 === 0 ? a! : b!;
      writes.push(registry.register({ id: 'billing', urls: [`http://127.0.0.1:${8000 + i}/mcp`] }));
    }
    await Promise.all(writes);
    const stored = JSON.parse((await clients[0]!.hget(`${prefix}:servers`, 'billing'))!) as {
      server: { urls: string[] };
    };
    const expected = stored.server.urls;
    // Both replicas end on the stored value, whatever order replies and messages came in.
    const deadline = Date.now() + 2_000;
    while (
      (a!.get('billing')?.urls[0] !== expected[0] || b!.get('billing')?.urls[0] !== expected[0]) &&
      Date.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(a!.get('billing')?.urls).toEqual(expected);
    expect(b!.get('billing')?.urls).toEqual(expected);
  });

  it('static ids stay static with Redis too, and bad input never reaches Redis', async () => {
    const {
      made: [a],
      prefix,
    } = await replicas(1);
    expect((await rejection(a!.register({ id: 'orders', urls: ['http://x.test/mcp'] }))).code).toBe(
      'CONFLICT',
    );
    expect((await rejection(a!.register({ id: 'billing', urls: [] }))).message).toContain('urls');
    expect(await clients[0]!.hlen(`${prefix}:servers`)).toBe(0);
  });

  it('fails fast with UNAVAILABLE when Redis is unreachable', async () => {
    const down = createRedisClient('redis://127.0.0.1:1');
    clients.push(down);
    const registry = createServerRegistry({
      staticServers: [orders],
      redis: down,
      keyPrefix: `test:gw:${randomUUID()}`,
      connectTimeoutMs: 300,
    });
    const error = await rejection(registry.start());
    expect(error.code).toBe('UNAVAILABLE');
    const put = await rejection(registry.register({ id: 'billing', urls: ['http://x.test/mcp'] }));
    expect(put.code).toBe('UNAVAILABLE');
    expect(put.retryable).toBe(true);
    expect(registry.list().map((s) => s.id)).toEqual(['orders']);
    await registry.close();
  });
});
