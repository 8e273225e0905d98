/**
 * Redis session store (DESIGN.md section 7). Keys, all under the session's hash tag:
 * - `<prefix>:s:{<id>}:meta`: hash (agent, owner, input JSON, createdAt, updatedAt, messageCount);
 * - `:msgs`: list of message JSON, oldest first; `:ids`: set of stored message ids (the guard);
 * - `:turn`: the turn lock (holder turn id, PX TTL); `:pending`: paused-turn state JSON;
 * and the owner's index `<prefix>:u:{t:<tenant>}:<user>:sessions` (sorted set by updatedAt).
 * Every write refreshes the idle TTL on the session's keys (the lock keeps its own TTL).
 */
import type { Redis } from 'ioredis';
import type {
  AcquireTurnResult,
  SessionOwner,
  SessionRecord,
  SessionStore,
  StoredMessage,
} from './session-store.js';
import { DEFAULT_SESSION_IDLE_TTL_MS, ownerIndexKey, sessionKeys } from './session-keys.js';
import type { SessionKeys } from './session-keys.js';
import { SessionStoreError, storeStep } from './session-store-error.js';
import { luaScript } from './lua-script.js';

export interface RedisSessionStoreOptions {
  /**
   * The caller owns the client (`close()` does not disconnect it). Create it with a bounded
   * command timeout and no offline queue, e.g. `createRedisClient(url)` from `@keel/tool-sdk`.
   */
  readonly redis: Redis;
  /** Default `keel`. */
  readonly prefix?: string;
  /** Default 30 days. */
  readonly idleTtlMs?: number;
  /** Epoch ms (createdAt / updatedAt). */
  readonly now?: () => number;
}

// The session's idle-TTL keys, in this order, are KEYS[1..4] of every write script.
const TOUCH = `
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[#ARGV]) end
`;

// KEYS: meta, msgs, ids, pending. ARGV: id, agent, user, tenant, input JSON, now, ttl.
const CREATE = luaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'agent', ARGV[2], 'user', ARGV[3], 'tenant', ARGV[4],
  'input', ARGV[5], 'createdAt', ARGV[6], 'updatedAt', ARGV[6], 'messageCount', 0)
${TOUCH}
return 1
`);

// KEYS: meta, msgs, ids, pending. ARGV: ttl.
const GET = luaScript(`
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return h end
${TOUCH}
return h
`);

// KEYS: meta, msgs, ids, pending. ARGV: message id, message JSON, now, ttl.
// Returns {-1} (no session), {0} (id already stored) or {1, user, tenant} (appended).
const APPEND = luaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
if redis.call('SADD', KEYS[3], ARGV[1]) == 0 then return {0} end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'messageCount', 1)
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[3])
${TOUCH}
return {1, redis.call('HGET', KEYS[1], 'user'), redis.call('HGET', KEYS[1], 'tenant')}
`);

// KEYS: meta, msgs, ids, pending. ARGV: message id, now, ttl.
const REMOVE_LAST = luaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local last = redis.call('LINDEX', KEYS[2], -1)
if not last then return 0 end
local ok, message = pcall(cjson.decode, last)
if not ok or type(message) ~= 'table' or message.id ~= ARGV[1] then return 0 end
redis.call('RPOP', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'messageCount', -1)
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[2])
${TOUCH}
return 1
`);

// KEYS: meta, msgs, ids, pending. ARGV: state JSON, ttl.
const SAVE_PENDING = luaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[4], ARGV[1])
${TOUCH}
return 1
`);

// KEYS: lock. ARGV: turn id, ttl. Returns {1} or {0, holder, pttl}.
const ACQUIRE = luaScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
return {0, redis.call('GET', KEYS[1]) or '', redis.call('PTTL', KEYS[1])}
`);

// KEYS: lock. ARGV: turn id, ttl.
const RENEW = luaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`);

// KEYS: lock. ARGV: turn id.
const RELEASE = luaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`);

/** The least `retryAfterMs` a refused turn is told (also when the lock has no TTL). */
const MIN_RETRY_AFTER_MS = 1_000;
const DEFAULT_LIST_LIMIT = 100;

const idleKeys = (k: SessionKeys) => [k.meta, k.msgs, k.ids, k.pending] as const;

function toRecord(flat: string[]): SessionRecord | undefined {
  if (flat.length === 0) return undefined;
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  return {
    id: h.id ?? '',
    agent: h.agent ?? '',
    owner: { user: h.user ?? '', tenant: h.tenant ?? '' },
    input: JSON.parse(h.input ?? '{}') as Record<string, string>,
    createdAt: Number(h.createdAt),
    updatedAt: Number(h.updatedAt),
    messageCount: Number(h.messageCount),
  };
}

/**
 * A {@link SessionStore} in Redis, shared by every orchestrator replica.
 *
 * @example
 * ```ts
 * import { createRedisClient } from '@keel/tool-sdk';
 * const sessions = createRedisSessionStore({ redis: createRedisClient(process.env.REDIS_URL!) });
 * await sessions.create({ id: 's1', agent: 'support', owner: { user: 'u', tenant: 't' } });
 * ```
 */
export function createRedisSessionStore(options: RedisSessionStoreOptions): SessionStore {
  const { redis } = options;
  const prefix = options.prefix ?? 'keel';
  const ttl = options.idleTtlMs ?? DEFAULT_SESSION_IDLE_TTL_MS;
  const now = options.now ?? Date.now;
  const keys = (id: string) => sessionKeys(prefix, id);

  /** Refreshes the owner index entry's score (only if listed) and the index's TTL. */
  const touchIndex = async (owner: SessionOwner, id: string, at: number | undefined) => {
    const index = ownerIndexKey(prefix, owner);
    const pipeline = redis.pipeline();
    if (at !== undefined) pipeline.zadd(index, 'XX', at, id);
    pipeline.pexpire(index, ttl);
    const results = (await pipeline.exec()) ?? [];
    for (const [error] of results) if (error) throw error;
  };

  return {
    create: (input) =>
      storeStep('create', async () => {
        const k = keys(input.id);
        const at = now();
        const owner = { user: input.owner.user, tenant: input.owner.tenant };
        const created = await CREATE.run(redis, idleKeys(k), [
          input.id,
          input.agent,
          owner.user,
          owner.tenant,
          JSON.stringify(input.input ?? {}),
          at,
          ttl,
        ]);
        if (created !== 1) throw new SessionStoreError('CONFLICT', 'session id already exists');
        const index = ownerIndexKey(prefix, owner);
        const results =
          (await redis.pipeline().zadd(index, at, input.id).pexpire(index, ttl).exec()) ?? [];
        for (const [error] of results) if (error) throw error;
        return {
          id: input.id,
          agent: input.agent,
          owner,
          input: { ...(input.input ?? {}) },
          createdAt: at,
          updatedAt: at,
          messageCount: 0,
        };
      }),

    get: (id) =>
      storeStep('get', async () => {
        const record = toRecord((await GET.run(redis, idleKeys(keys(id)), [ttl])) as string[]);
        if (record) await touchIndex(record.owner, id, undefined);
        return record;
      }),

    list: (owner, listOptions) =>
      storeStep('list', async () => {
        const limit = listOptions?.limit ?? DEFAULT_LIST_LIMIT;
        if (limit <= 0) return [];
        const index = ownerIndexKey(prefix, owner);
        const ids = await redis.zrevrange(index, 0, limit - 1);
        if (ids.length === 0) return [];
        const pipeline = redis.pipeline();
        for (const id of ids) pipeline.hgetall(keys(id).meta);
        const rows = (await pipeline.exec()) ?? [];
        const records: SessionRecord[] = [];
        const gone: string[] = [];
        rows.forEach(([error, value], i) => {
          if (error) throw error;
          const flat = Object.entries((value ?? {}) as Record<string, string>).flat();
          const record = toRecord(flat);
          // An index entry outlives a session that expired idle: drop it lazily.
          if (!record || record.owner.user !== owner.user || record.owner.tenant !== owner.tenant) {
            gone.push(ids[i]!);
          } else {
            records.push(record);
          }
        });
        if (gone.length > 0) await redis.zrem(index, ...gone);
        return records;
      }),

    delete: (id) =>
      storeStep('delete', async () => {
        const k = keys(id);
        const [[metaError, owner], [turnsError, turnIds]] = ((await redis
          .pipeline()
          .hmget(k.meta, 'user', 'tenant')
          .smembers(k.turns)
          .exec()) ?? []) as [[Error | null, (string | null)[]], [Error | null, string[]]];
        if (metaError) throw metaError;
        if (turnsError) throw turnsError;
        // All of these share the session's hash tag: one DEL, one cluster slot.
        await redis.del(
          k.meta,
          k.msgs,
          k.ids,
          k.turn,
          k.pending,
          k.lastTurn,
          k.turns,
          ...turnIds.map((t) => k.stream(t)),
        );
        const [user, tenant] = owner;
        if (user != null && tenant != null) {
          await redis.zrem(ownerIndexKey(prefix, { user, tenant }), id);
          return true;
        }
        return false;
      }),

    appendMessage: (sessionId, message) =>
      storeStep('appendMessage', async () => {
        const at = now();
        const [result, user, tenant] = (await APPEND.run(redis, idleKeys(keys(sessionId)), [
          message.id,
          JSON.stringify(message),
          at,
          ttl,
        ])) as [number, string?, string?];
        if (result === -1) throw new SessionStoreError('NOT_FOUND', 'session not found');
        if (result !== 1) return false;
        // The index lives in the tenant's slot, so it cannot join the script (Redis Cluster).
        await touchIndex({ user: user ?? '', tenant: tenant ?? '' }, sessionId, at);
        return true;
      }),

    removeLastMessage: (sessionId, messageId) =>
      storeStep('removeLastMessage', async () => {
        const result = await REMOVE_LAST.run(redis, idleKeys(keys(sessionId)), [
          messageId,
          now(),
          ttl,
        ]);
        return result === 1;
      }),

    readMessages: (sessionId, limit) =>
      storeStep('readMessages', async () => {
        if (limit !== undefined && limit <= 0) return [];
        const rows = await redis.lrange(keys(sessionId).msgs, limit === undefined ? 0 : -limit, -1);
        return rows.map((json) => JSON.parse(json) as StoredMessage);
      }),

    acquireTurn: (sessionId, turnId, ttlMs) =>
      storeStep('acquireTurn', async (): Promise<AcquireTurnResult> => {
        const [ok, holder, pttl] = (await ACQUIRE.run(
          redis,
          [keys(sessionId).turn],
          [turnId, Math.max(1, Math.ceil(ttlMs))],
        )) as [number, string?, number?];
        if (ok === 1) return { ok: true };
        return {
          ok: false,
          activeTurnId: holder ?? '',
          retryAfterMs: Math.max(MIN_RETRY_AFTER_MS, pttl ?? 0),
        };
      }),

    renewTurn: (sessionId, turnId, ttlMs) =>
      storeStep('renewTurn', async () => {
        const result = await RENEW.run(
          redis,
          [keys(sessionId).turn],
          [turnId, Math.max(1, Math.ceil(ttlMs))],
        );
        return result === 1;
      }),

    releaseTurn: (sessionId, turnId) =>
      storeStep('releaseTurn', async () => {
        await RELEASE.run(redis, [keys(sessionId).turn], [turnId]);
      }),

    activeTurn: (sessionId) =>
      storeStep('activeTurn', async () => (await redis.get(keys(sessionId).turn)) ?? undefined),

    savePending: (sessionId, state) =>
      storeStep('savePending', async () => {
        const saved = await SAVE_PENDING.run(redis, idleKeys(keys(sessionId)), [
          JSON.stringify(state),
          ttl,
        ]);
        if (saved !== 1) throw new SessionStoreError('NOT_FOUND', 'session not found');
      }),

    takePending: (sessionId) =>
      storeStep('takePending', async () => {
        const json = await redis.getdel(keys(sessionId).pending);
        return json === null ? undefined : (JSON.parse(json) as unknown);
      }),

    peekPending: (sessionId) =>
      storeStep('peekPending', async () => {
        const json = await redis.get(keys(sessionId).pending);
        return json === null ? undefined : (JSON.parse(json) as unknown);
      }),

    async close() {},
  };
}
