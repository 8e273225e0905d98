/**
 * `POST .../stop` may land on any replica, not only the one running the turn: the request is
 * written to Redis (`keel:s:{<sessionId>}:stop:<turnId>`, expiring) and the running replica
 * polls it. In memory (one process) it is a set.
 */
import type { Redis } from 'ioredis';

export interface StopRequests {
  request(sessionId: string, turnId: string): Promise<void>;
  requested(sessionId: string, turnId: string): Promise<boolean>;
}

/** How long a stop request is kept: longer than any turn may wait for its next poll. */
export const STOP_REQUEST_TTL_MS = 10 * 60 * 1_000;

export function createRedisStopRequests(redis: Redis, prefix = 'keel'): StopRequests {
  const key = (sessionId: string, turnId: string) => `${prefix}:s:{${sessionId}}:stop:${turnId}`;
  return {
    async request(sessionId, turnId) {
      await redis.set(key(sessionId, turnId), '1', 'PX', STOP_REQUEST_TTL_MS);
    },
    async requested(sessionId, turnId) {
      return (await redis.exists(key(sessionId, turnId))) === 1;
    },
  };
}

export function createMemoryStopRequests(now: () => number = Date.now): StopRequests {
  const requests = new Map<string, number>();
  return {
    async request(sessionId, turnId) {
      requests.set(`${sessionId}\u0000${turnId}`, now() + STOP_REQUEST_TTL_MS);
    },
    async requested(sessionId, turnId) {
      const k = `${sessionId}\u0000${turnId}`;
      const until = requests.get(k);
      if (until === undefined) return false;
      if (until <= now()) {
        requests.delete(k);
        return false;
      }
      return true;
    },
  };
}
