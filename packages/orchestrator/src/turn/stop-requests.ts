/**
 * `POST .../stop` may land on any replica, not only the one running the turn. The request is
 * written to Redis (`keel:s:{<sessionId>}:stop:<turnId>`, expiring) and published on one
 * channel (`keel:stop`) that each replica subscribes to once, so the running replica stops the
 * turn at once without polling. In memory (one process) it is a map of watchers.
 */
import type { Redis } from 'ioredis';

export interface StopRequests {
  /** Asks the replica running `turnId` to stop it. */
  request(sessionId: string, turnId: string): Promise<void>;
  /** Calls `onStop` when a stop for this turn is requested (also one already requested). */
  watch(sessionId: string, turnId: string, onStop: () => void): () => void;
  close(): Promise<void>;
}

/** How long a stop request is kept for a watcher that starts late. */
export const STOP_REQUEST_TTL_MS = 10 * 60 * 1_000;

const keyOf = (sessionId: string, turnId: string) => `${sessionId}\u0000${turnId}`;

function watchers() {
  const map = new Map<string, Set<() => void>>();
  return {
    add(k: string, fn: () => void) {
      const set = map.get(k) ?? new Set();
      set.add(fn);
      map.set(k, set);
      return () => {
        set.delete(fn);
        if (set.size === 0) map.delete(k);
      };
    },
    fire(k: string) {
      for (const fn of map.get(k) ?? []) fn();
    },
    get size() {
      return map.size;
    },
  };
}

export function createRedisStopRequests(redis: Redis, prefix = 'keel'): StopRequests {
  const channel = `${prefix}:stop`;
  const key = (sessionId: string, turnId: string) => `${prefix}:s:{${sessionId}}:stop:${turnId}`;
  const local = watchers();
  let subscriber: Redis | undefined;
  const subscribe = (): void => {
    if (subscriber !== undefined) return;
    subscriber = redis.duplicate({ enableOfflineQueue: true, commandTimeout: undefined });
    subscriber.on('error', () => undefined);
    subscriber.on('message', (_channel: string, message: string) => {
      try {
        const [sessionId, turnId] = JSON.parse(message) as [string, string];
        local.fire(keyOf(sessionId, turnId));
      } catch {
        // not ours
      }
    });
    void subscriber.subscribe(channel).catch(() => undefined);
  };
  return {
    async request(sessionId, turnId) {
      await redis.set(key(sessionId, turnId), '1', 'PX', STOP_REQUEST_TTL_MS);
      await redis.publish(channel, JSON.stringify([sessionId, turnId]));
    },
    watch(sessionId, turnId, onStop) {
      subscribe();
      const remove = local.add(keyOf(sessionId, turnId), onStop);
      // A stop requested before the watch began.
      redis.exists(key(sessionId, turnId)).then(
        (n) => {
          if (n === 1) onStop();
        },
        () => undefined,
      );
      return remove;
    },
    async close() {
      subscriber?.disconnect();
      subscriber = undefined;
    },
  };
}

export function createMemoryStopRequests(now: () => number = Date.now): StopRequests {
  const requested = new Map<string, number>();
  const local = watchers();
  return {
    async request(sessionId, turnId) {
      const k = keyOf(sessionId, turnId);
      requested.set(k, now() + STOP_REQUEST_TTL_MS);
      local.fire(k);
    },
    watch(sessionId, turnId, onStop) {
      const k = keyOf(sessionId, turnId);
      const until = requested.get(k);
      if (until !== undefined && until > now()) queueMicrotask(onStop);
      return local.add(k, onStop);
    },
    async close() {
      requested.clear();
    },
  };
}
