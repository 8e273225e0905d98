import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { gatewayConfigSchema } from './config/gateway-config.js';
import { createGateway } from './gateway.js';

describe('gateway admin API (in-process)', () => {
  const config = gatewayConfigSchema.parse({
    auth: { development: true, adminKeyEnv: 'KEEL_ADMIN_KEY' },
    defaults: { policies: { deadlineMs: 1234, retry: { maxAttempts: 2 } } },
    servers: [],
  });
  const gateway = createGateway({
    config,
    logger: pino({ level: 'silent' }),
    env: { KEEL_ADMIN_KEY: 'admin-secret' },
  });
  afterAll(() => gateway.close({ graceMs: 0 }));

  const admin = (method: string, path: string, body?: unknown, key = 'admin-secret') =>
    gateway.fetch(
      new Request(`http://127.0.0.1:7070${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      }),
    );

  it('a server registered at run time gets defaults.policies, its own values winning', async () => {
    const put = await admin('PUT', '/admin/servers/billing', {
      id: 'billing',
      // Nothing listens here: the catalog fetch fails and is retried later; registration stands.
      urls: ['http://127.0.0.1:9/mcp'],
      policies: { retry: { baseDelayMs: 50 } },
    });
    expect(put.status).toBe(201);
    const billing = JSON.stringify(await (await admin('GET', '/admin/servers')).json());
    expect(billing).toContain('"deadlineMs":1234');
    expect(billing).toContain('"maxAttempts":2');
    expect(billing).toContain('"baseDelayMs":50');
  });

  it('refuses a wrong admin key', async () => {
    expect((await admin('GET', '/admin/servers', undefined, 'nope')).status).toBe(401);
  });
});
