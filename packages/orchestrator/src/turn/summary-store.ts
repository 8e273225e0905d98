/**
 * The running summary of a session's messages that no longer fit the model's window (context
 * strategy `summary`): `keel:s:{<sessionId>}:summary` in Redis (idle TTL like the session), or
 * a map in memory. The stored history itself is never changed.
 */
import type { Redis } from 'ioredis';

export interface SessionSummary {
  /** How many of the oldest model messages it covers. */
  readonly covered: number;
  readonly text: string;
}

export interface SummaryStore {
  get(sessionId: string): Promise<SessionSummary | undefined>;
  set(sessionId: string, summary: SessionSummary): Promise<void>;
  delete(sessionId: string): Promise<void>;
}

const DEFAULT_TTL_MS = 30 * 24 * 60 * 60 * 1_000;

function parse(raw: string | null | undefined): SessionSummary | undefined {
  if (raw === null || raw === undefined) return undefined;
  try {
    const value = JSON.parse(raw) as Partial<SessionSummary>;
    return typeof value.covered === 'number' && typeof value.text === 'string'
      ? { covered: value.covered, text: value.text }
      : undefined;
  } catch {
    return undefined;
  }
}

export function createRedisSummaryStore(
  redis: Redis,
  options: { prefix?: string; ttlMs?: number } = {},
): SummaryStore {
  const prefix = options.prefix ?? 'keel';
  const ttl = options.ttlMs ?? DEFAULT_TTL_MS;
  const key = (id: string) => `${prefix}:s:{${id}}:summary`;
  return {
    async get(id) {
      return parse(await redis.get(key(id)));
    },
    async set(id, summary) {
      await redis.set(key(id), JSON.stringify(summary), 'PX', ttl);
    },
    async delete(id) {
      await redis.del(key(id));
    },
  };
}

export function createMemorySummaryStore(): SummaryStore {
  const map = new Map<string, string>();
  return {
    async get(id) {
      return parse(map.get(id));
    },
    async set(id, summary) {
      map.set(id, JSON.stringify(summary));
    },
    async delete(id) {
      map.delete(id);
    },
  };
}
