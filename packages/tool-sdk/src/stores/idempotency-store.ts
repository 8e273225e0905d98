/** What `begin` found for an idempotency key. */
export type IdempotencyBegin =
  | { state: 'claimed' }
  | { state: 'running'; fingerprint: string }
  | { state: 'done'; fingerprint: string; result: unknown };

/**
 * Claims `(aud, sub, tool, idk)` keys atomically; shared by every replica of a logical server
 * when it lives in Redis.
 */
export interface IdempotencyStore {
  /** Claim the key for this call (fingerprint = hash of its arguments), or report who has it. */
  begin(key: string, fingerprint: string, leaseMs: number): Promise<IdempotencyBegin>;
  /** Save the finished result for `ttlMs`. */
  complete(key: string, fingerprint: string, result: unknown, ttlMs: number): Promise<void>;
  /** Give the key up (the call failed in a way a retry may fix). */
  release(key: string): Promise<void>;
  close?(): Promise<void>;
}

interface Entry {
  fingerprint: string;
  done: boolean;
  result?: unknown;
  expiresAt: number;
}

/** One process's idempotency store. */
export function createMemoryIdempotencyStore(now: () => number = Date.now): IdempotencyStore {
  const entries = new Map<string, Entry>();
  return {
    async begin(key, fingerprint, leaseMs) {
      const t = now();
      const entry = entries.get(key);
      if (entry && entry.expiresAt > t) {
        return entry.done
          ? { state: 'done', fingerprint: entry.fingerprint, result: entry.result }
          : { state: 'running', fingerprint: entry.fingerprint };
      }
      entries.set(key, { fingerprint, done: false, expiresAt: t + leaseMs });
      return { state: 'claimed' };
    },
    async complete(key, fingerprint, result, ttlMs) {
      entries.set(key, { fingerprint, done: true, result, expiresAt: now() + ttlMs });
    },
    async release(key) {
      entries.delete(key);
    },
  };
}
