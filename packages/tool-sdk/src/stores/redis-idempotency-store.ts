import type { Redis } from 'ioredis';
import type { IdempotencyBegin, IdempotencyStore } from './idempotency-store.js';

// Claim atomically: set a running marker if the key is free, else return what is there.
const BEGIN = `
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

/** Idempotency store shared by every replica (keys `keel:ts:{<aud>}:idk:<key>`). */
export function createRedisIdempotencyStore(redis: Redis, audience: string): IdempotencyStore {
  const k = (key: string) => `keel:ts:{${audience}}:idk:${key}`;
  return {
    async begin(key, fingerprint, leaseMs): Promise<IdempotencyBegin> {
      const running = JSON.stringify({ f: fingerprint, d: false });
      const found = (await redis.eval(BEGIN, 1, k(key), running, String(leaseMs))) as string | null;
      if (!found) return { state: 'claimed' };
      const entry = JSON.parse(found) as { f: string; d: boolean; r?: unknown };
      return entry.d
        ? { state: 'done', fingerprint: entry.f, result: entry.r }
        : { state: 'running', fingerprint: entry.f };
    },
    async complete(key, fingerprint, result, ttlMs) {
      await redis.set(k(key), JSON.stringify({ f: fingerprint, d: true, r: result }), 'PX', ttlMs);
    },
    async release(key) {
      await redis.del(k(key));
    },
  };
}
