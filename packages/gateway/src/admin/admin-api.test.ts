import { describe, expect, it } from 'vitest';
import { isKeelError } from '@keel/tool-sdk/contract';
import { serverSchema } from '../config/gateway-config.js';
import { GatewayError } from '../errors/gateway-error.js';
import { createServerRegistry } from '../registry/server-registry.js';
import type { ServerRegistry } from '../registry/server-registry.js';
import { ADMIN_MAX_BODY_BYTES, createAdminApi } from './admin-api.js';
import type { AdminApiOptions, HeldToolView } from './admin-api.js';

const KEY = 'admin-secret-key';
const BASE = 'http://gw.test';
const orders = serverSchema.parse({ id: 'orders', urls: ['http://127.0.0.1:7101/mcp'] });

/** A catalog fake with one held tool; records approvals. */
function heldCatalog() {
  const held: HeldToolView[] = [
    {
      exposed: 'orders__refund_order',
      serverId: 'orders',
      tool: 'refund_order',
      oldHash: 'aaa',
      newHash: 'bbb',
    },
  ];
  const approved: string[] = [];
  return {
    approved,
    held: () => [...held],
    async approve(exposed: string) {
      const i = held.findIndex((h) => h.exposed === exposed);
      if (i < 0) return false;
      held.splice(i, 1);
      approved.push(exposed);
      return true;
    },
  };
}

function setup(overrides: Partial<AdminApiOptions> = {}) {
  const registry = createServerRegistry({ staticServers: [orders] });
  const catalog = heldCatalog();
  let n = 0;
  const admin = createAdminApi({
    registry,
    catalog,
    adminKey: KEY,
    newId: () => `corr-${++n}`,
    ...overrides,
  });
  const call = (
    method: string,
    path: string,
    init: {
      body?: RequestInit['body'];
      headers?: Record<string, string>;
      auth?: string | null;
    } = {},
  ) => {
    const headers: Record<string, string> = { ...init.headers };
    const auth = init.auth === undefined ? `Bearer ${KEY}` : init.auth;
    if (auth !== null) headers.authorization = auth;
    return admin(
      new Request(`${BASE}${path}`, {
        method,
        headers,
        // A stream body needs `duplex` (not yet in the RequestInit type).
        ...(init.body !== undefined ? { body: init.body, duplex: 'half' } : {}),
      } as RequestInit),
      path,
    );
  };
  const json = (method: string, path: string, body: unknown) =>
    call(method, path, {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
  return { registry, catalog, call, json };
}

async function errorOf(response: Response) {
  const body = (await response.json()) as { error: unknown };
  expect(isKeelError(body.error)).toBe(true);
  const text = JSON.stringify(body);
  expect(text).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  expect(text).not.toContain(KEY);
  return body.error as { code: string; message: string; correlationId: string; details?: unknown };
}

describe('admin API', () => {
  it('lists, registers, updates and deregisters servers', async () => {
    const { call, json, registry } = setup();
    let res = await call('GET', '/admin/servers');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ servers: [{ source: 'config', server: orders }] });

    res = await json('PUT', '/admin/servers/billing', {
      id: 'billing',
      urls: ['http://127.0.0.1:7102/mcp'],
    });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { source: string; server: { id: string; auth: unknown } };
    expect(created).toMatchObject({
      source: 'admin',
      server: { id: 'billing', auth: { mode: 'keel-jwt' } },
    });
    expect(registry.get('billing')).toBeDefined();

    // The id may be left out of the body: the path names it.
    res = await json('PUT', '/admin/servers/billing', { urls: ['http://127.0.0.1:7103/mcp'] });
    expect(res.status).toBe(200);
    expect(registry.get('billing')?.urls).toEqual(['http://127.0.0.1:7103/mcp']);

    res = await call('GET', '/admin/servers/billing');
    expect(await res.json()).toMatchObject({ source: 'admin', server: { id: 'billing' } });

    res = await call('DELETE', '/admin/servers/billing');
    expect(res.status).toBe(204);
    expect(registry.get('billing')).toBeUndefined();
    res = await call('DELETE', '/admin/servers/billing');
    expect(res.status).toBe(404);
    expect((await errorOf(res)).code).toBe('NOT_FOUND');
  });

  it('answers 400 naming the field for bad input, and for a path/body id mismatch', async () => {
    const { json, call, registry } = setup();
    let res = await json('PUT', '/admin/servers/billing', { id: 'billing', urls: ['not a url'] });
    expect(res.status).toBe(400);
    let error = await errorOf(res);
    expect(error.code).toBe('INVALID_INPUT');
    expect(error.message).toContain('urls.0');
    expect(error.details).toEqual({ issues: [expect.objectContaining({ path: 'urls.0' })] });

    res = await json('PUT', '/admin/servers/billing', {
      id: 'other',
      urls: ['http://127.0.0.1:1/mcp'],
    });
    expect(res.status).toBe(400);
    error = await errorOf(res);
    expect(error.details).toEqual({ issues: [expect.objectContaining({ path: 'id' })] });

    res = await call('PUT', '/admin/servers/billing', { body: '{"urls": [' });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe('INVALID_INPUT');

    res = await call('PUT', '/admin/servers/billing', {
      body: '{"id":"billing","urls":["http://a.test/mcp"],"urls":["http://b.test/mcp"]}',
    });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toContain('duplicate key');

    expect(registry.get('billing')).toBeUndefined();
  });

  it('answers 409 for servers of the config file', async () => {
    const { json, call, registry } = setup();
    const put = await json('PUT', '/admin/servers/orders', { urls: ['http://evil.test/mcp'] });
    expect(put.status).toBe(409);
    expect((await errorOf(put)).code).toBe('CONFLICT');
    const del = await call('DELETE', '/admin/servers/orders');
    expect(del.status).toBe(409);
    expect(registry.get('orders')).toBe(orders);
  });

  it('lists held tool definitions and approves one', async () => {
    const { call, catalog } = setup();
    let res = await call('GET', '/admin/tools/held');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      held: [
        {
          exposed: 'orders__refund_order',
          serverId: 'orders',
          tool: 'refund_order',
          oldHash: 'aaa',
          newHash: 'bbb',
        },
      ],
    });
    res = await call('POST', '/admin/tools/orders__refund_order/approve');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ approved: 'orders__refund_order' });
    expect(catalog.approved).toEqual(['orders__refund_order']);
    res = await call('POST', '/admin/tools/orders__refund_order/approve');
    expect(res.status).toBe(404);
  });

  it('needs the admin bearer token (401 with WWW-Authenticate otherwise)', async () => {
    const { call, registry } = setup();
    for (const auth of [null, 'Bearer wrong', `Basic ${KEY}`, `Bearer ${KEY}x`, 'Bearer ', KEY]) {
      const res = await call('PUT', '/admin/servers/billing', {
        auth,
        body: JSON.stringify({ urls: ['http://127.0.0.1:7102/mcp'] }),
      });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect((await errorOf(res)).code).toBe('UNAUTHENTICATED');
    }
    expect(registry.get('billing')).toBeUndefined();
    // Unknown paths answer 401 too: nothing is learned without the key.
    expect((await call('GET', '/admin/nothing', { auth: null })).status).toBe(401);
    expect((await call('GET', '/admin/servers', { auth: `bearer ${KEY}` })).status).toBe(200);
  });

  it('is disabled (403) when no admin key is configured, whatever the request carries', async () => {
    for (const adminKey of [undefined, '']) {
      const { call } = setup({ adminKey });
      for (const auth of [null, 'Bearer ', `Bearer ${KEY}`]) {
        const res = await call('GET', '/admin/servers', { auth });
        expect(res.status).toBe(403);
        expect((await errorOf(res)).code).toBe('FORBIDDEN');
      }
    }
  });

  it('refuses bodies over 64 KiB with 413, by header or while reading', async () => {
    const { call, registry } = setup();
    const big = JSON.stringify({
      urls: ['http://127.0.0.1:7102/mcp'],
      pad: 'x'.repeat(ADMIN_MAX_BODY_BYTES),
    });
    let res = await call('PUT', '/admin/servers/billing', { body: big });
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe('LIMIT_EXCEEDED');

    // A declared length over the cap is refused before any byte is read.
    res = await call('PUT', '/admin/servers/billing', {
      body: '{}',
      headers: { 'content-length': String(ADMIN_MAX_BODY_BYTES + 1) },
    });
    expect(res.status).toBe(413);

    // No content-length: a stream that passes the cap while being read.
    const chunk = new TextEncoder().encode('x'.repeat(16 * 1024));
    let pulled = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        if (pulled > 100) controller.close();
        else controller.enqueue(chunk);
      },
    });
    res = await call('PUT', '/admin/servers/billing', { body: stream, headers: {} });
    expect(res.status).toBe(413);
    expect(pulled).toBeLessThan(10); // it stopped reading at the cap
    expect(registry.get('billing')).toBeUndefined();
  });

  it('answers 404 for unknown resources and 405 for a wrong method', async () => {
    const { call } = setup();
    expect((await call('GET', '/admin')).status).toBe(404);
    expect((await call('GET', '/admin/servers/a/b')).status).toBe(404);
    expect((await call('GET', '/admin/servers/%E0%A4%A')).status).toBe(400);
    const res = await call('POST', '/admin/servers');
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
  });

  it('maps an unreachable store to 503 and anything unexpected to a bare 500', async () => {
    const failing = (
      error: unknown,
    ): Pick<ServerRegistry, 'list' | 'get' | 'isStatic' | 'register' | 'deregister'> => ({
      list: () => [],
      get: () => undefined,
      isStatic: () => false,
      register: () => Promise.reject(error),
      deregister: () => Promise.reject(error),
    });
    let { json } = setup({ registry: failing(new GatewayError('UNAVAILABLE', 'Redis is down')) });
    let res = await json('PUT', '/admin/servers/billing', { urls: ['http://127.0.0.1:7102/mcp'] });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    const unavailable = await errorOf(res);
    expect(unavailable).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect(res.headers.get('x-correlation-id')).toBe(unavailable.correlationId);

    ({ json } = setup({ registry: failing(new Error('secret internals at /srv/x.ts:12')) }));
    res = await json('PUT', '/admin/servers/billing', { urls: ['http://127.0.0.1:7102/mcp'] });
    expect(res.status).toBe(500);
    const internal = await errorOf(res);
    expect(internal).toMatchObject({ code: 'INTERNAL', message: 'Internal error' });
    expect(JSON.stringify(internal)).not.toContain('secret internals');
  });
});
