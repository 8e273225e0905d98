/**
 * P2 gateway: one replica in front of one tool server, with an inbound API key, keel-jwt
 * signing, a Redis rate limit that never triggers and the default policies (retry, breaker,
 * bulkhead, timeouts).
 */
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { createRedisClient } from '@keel/tool-sdk';
import { gatewayConfigSchema } from '../packages/gateway/src/config/gateway-config.js';
import { createGateway } from '../packages/gateway/src/gateway.js';
import { announceReady } from './lib/p1-shared.js';

const need = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const port = Number(need('P2_GATEWAY_PORT'));
const apiKey = need('P2_API_KEY');
if (!process.env.REDIS_URL)
  throw new Error('REDIS_URL is not set (P2 measures a Redis rate limit)');

const config = gatewayConfigSchema.parse({
  gateway: { port, issuer: need('P2_ISSUER') },
  auth: {
    principals: [{ id: 'bench', keySha256: createHash('sha256').update(apiKey).digest('hex') }],
  },
  servers: [
    {
      id: need('P2_SERVER_ID'),
      urls: [need('P2_UPSTREAM_URL')],
      auth: { mode: 'keel-jwt' },
      // Defaults for retry, breaker, bulkhead and timeouts; a rate limit far above any load.
      policies: { rateLimits: [{ per: 'user', limit: 1_000_000_000, windowMs: 60_000 }] },
    },
  ],
});
const keyPrefix = `keel:bench:p2:${process.pid}`;
const redis = createRedisClient(need('REDIS_URL'), () => undefined);
const gateway = createGateway({ config, logger: pino({ level: 'silent' }), redis, keyPrefix });
await gateway.listen(port, '127.0.0.1');
await gateway.start();
announceReady(port);
process.on('SIGTERM', () => {
  void (async () => {
    await gateway.close({ graceMs: 100 });
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    process.exit(0);
  })();
});
