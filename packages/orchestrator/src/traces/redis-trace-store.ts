/**
 * Redis trace store (DESIGN.md sections 7 and 10). Keys:
 * - `<prefix>:tr:<traceId>`: the trace JSON, with a TTL (default 7 days);
 * - `<prefix>:s:{<sessionId>}:traces`: sorted set of the session's trace ids by start time;
 * - `<prefix>:s:{<sessionId>}:traces:sum`: hash of their summaries, so listing is one read.
 * The two index keys share the session's hash tag, so each script touches one cluster slot.
 */
import type { Redis } from 'ioredis';
import type { TraceStore, TraceSummary, TurnTrace } from './trace.js';
import {
  DEFAULT_TRACES_PER_SESSION,
  DEFAULT_TRACE_TTL_MS,
  clampLimit,
  isTraceId,
} from './trace-store-limits.js';
import { summarize } from './trace-summary.js';
import { traceStoreStep } from './trace-error.js';
import { luaScript } from '../sessions/lua-script.js';

export interface RedisTraceStoreOptions {
  /** The caller owns the client: `close()` does not disconnect it. */
  readonly redis: Redis;
  /** Default `keel`. */
  readonly prefix?: string;
  /** Default 7 days. */
  readonly ttlMs?: number;
  /** Default 200: older traces drop out of the session index. */
  readonly maxPerSession?: number;
  /** Epoch ms; decides which index entries are past their TTL. */
  readonly now?: () => number;
}

// KEYS: index zset, summary hash. ARGV: startMs, traceId, summary JSON, cap, ttlMs.
const INDEX_SCRIPT = luaScript(`
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
local extra = n - tonumber(ARGV[4])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
  redis.call('HDEL', KEYS[2], unpack(old))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return n
`);

// KEYS: index zset, summary hash. ARGV: limit, cutoff (start times before it have expired).
const LIST_SCRIPT = luaScript(`
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('HDEL', KEYS[2], unpack(expired))
end
local ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))
`);

/**
 * A {@link TraceStore} in Redis, shared by every orchestrator replica.
 *
 * @example
 * ```ts
 * const store = createRedisTraceStore({ redis: createRedisClient(process.env.REDIS_URL!) });
 * await store.save(recorder.snapshot());
 * ```
 */
export function createRedisTraceStore(options: RedisTraceStoreOptions): TraceStore {
  const { redis } = options;
  const prefix = options.prefix ?? 'keel';
  const ttlMs = options.ttlMs ?? DEFAULT_TRACE_TTL_MS;
  const cap = options.maxPerSession ?? DEFAULT_TRACES_PER_SESSION;
  const now = options.now ?? Date.now;
  const traceKey = (traceId: string) => `${prefix}:tr:${traceId}`;
  const indexKeys = (sessionId: string) => {
    const base = `${prefix}:s:{${sessionId}}:traces`;
    return [base, `${base}:sum`] as const;
  };

  return {
    save(trace: TurnTrace) {
      return traceStoreStep('save', async () => {
        // The body first: the index never names a trace that was not written.
        await redis.set(traceKey(trace.traceId), JSON.stringify(trace), 'PX', ttlMs);
        await INDEX_SCRIPT.run(redis, indexKeys(trace.sessionId), [
          trace.startMs,
          trace.traceId,
          JSON.stringify(summarize(trace)),
          cap,
          ttlMs,
        ]);
      });
    },

    async get(traceId) {
      if (!isTraceId(traceId)) return undefined;
      const json = await traceStoreStep('get', () => redis.get(traceKey(traceId)));
      return json === null ? undefined : (JSON.parse(json) as TurnTrace);
    },

    async listBySession(sessionId, limit) {
      const rows = (await traceStoreStep('list', () =>
        LIST_SCRIPT.run(redis, indexKeys(sessionId), [clampLimit(limit, cap), now() - ttlMs]),
      )) as (string | null)[];
      return rows.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as TraceSummary);
    },

    async close() {},
  };
}
