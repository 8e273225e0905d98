import type { Redis } from 'ioredis';
import type { ReplayStore } from './replay-store.js';

/** Replay store shared by every replica of a logical server (keys `keel:ts:{<aud>}:jti:<jti>`). The caller owns `redis`. */
export function createRedisReplayStore(
  redis: Redis,
  audience: string,
  now: () => number = Date.now,
): ReplayStore {
  return {
    async claim(jti, expiresAtMs) {
      const ttl = Math.max(1, expiresAtMs - now());
      const ok = await redis.set(`keel:ts:{${audience}}:jti:${jti}`, '1', 'PX', ttl, 'NX');
      return ok === 'OK';
    },
  };
}
