/**
 * Where the approved hash of each upstream tool definition is kept, so every gateway replica
 * agrees on what is approved (S14: a changed definition is held until an admin approves it).
 */
import type { Redis } from 'ioredis';

/** Approved definition hashes, keyed `<serverId>/<tool>`. */
export interface ApprovalStore {
  get(key: string): Promise<string | undefined>;
  /** Record `hash` as approved; with `onlyIfAbsent`, keep an existing approval. */
  set(key: string, hash: string, options?: { onlyIfAbsent?: boolean }): Promise<void>;
}

/** One process. */
export function createMemoryApprovalStore(): ApprovalStore {
  const approved = new Map<string, string>();
  return {
    get: async (key) => approved.get(key),
    async set(key, hash, options = {}) {
      if (options.onlyIfAbsent && approved.has(key)) return;
      approved.set(key, hash);
    },
  };
}

/** Shared by every replica (a Redis hash). */
export function createRedisApprovalStore(redis: Redis, keyPrefix = 'keel:gw'): ApprovalStore {
  const key = `${keyPrefix}:catalog:approved`;
  return {
    get: async (field) => (await redis.hget(key, field)) ?? undefined,
    async set(field, hash, options = {}) {
      if (options.onlyIfAbsent) await redis.hsetnx(key, field, hash);
      else await redis.hset(key, field, hash);
    },
  };
}
