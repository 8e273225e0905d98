import { Redis } from 'ioredis';

/**
 * A Redis client for request paths: bounded command time, no offline queue, so a request fails
 * fast (and closed) while Redis is down instead of hanging or re-sending old commands.
 */
export function createRedisClient(url: string, onError: (error: Error) => void = () => {}): Redis {
  const client = new Redis(url, {
    commandTimeout: 500,
    connectTimeout: 1_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(100 * attempt, 1_000),
    lazyConnect: false,
  });
  // Connection errors surface as failed commands (fail closed); the event is for logging only.
  client.on('error', onError);
  return client;
}

/** Resolves once the client is connected (or rejects after `timeoutMs`). */
export function redisReady(client: Redis, timeoutMs = 5_000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('Redis did not become ready')), timeoutMs);
    client.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
