/**
 * Redis turn streams (DESIGN.md section 7): one Redis Stream per turn,
 * `<prefix>:s:{<sessionId>}:t:<turnId>`, capped with `XADD MAXLEN ~` and expiring
 * (`PEXPIRE`) after the last append. The end marker is an entry with field `end`; chunks have
 * field `d`. `:lastturn` names the session's latest turn and `:turns` lists the turns that
 * have a stream (so deleting the session removes them).
 *
 * Blocking reads (`XREAD BLOCK`) run on dedicated connections duplicated from the caller's
 * client (at most `maxBlockingReaders` at a time, idle ones kept for reuse), so a waiting
 * follower never stalls other commands on the shared connection. Aborting a read closes its
 * dedicated connection, which ends the wait at once. Past the limit, readers poll instead.
 */
import type { Redis } from 'ioredis';
import type {
  ReadTurnStreamOptions,
  TurnStreamEntry,
  TurnStreamRead,
  TurnStreamStore,
} from './session-store.js';
import {
  DEFAULT_TURN_STREAM_MAX_LEN,
  DEFAULT_TURN_STREAM_TTL_MS,
  sessionKeys,
} from './session-keys.js';
import { storeStep } from './session-store-error.js';
import { luaScript } from './lua-script.js';
import { isEntryId } from './stream-entry-id.js';

export interface RedisTurnStreamStoreOptions {
  /** The caller owns the client (`close()` does not disconnect it). */
  readonly redis: Redis;
  /** Default `keel`. */
  readonly prefix?: string;
  /** Default 24 hours after the last append. */
  readonly ttlMs?: number;
  /** Approximate cap per turn (`MAXLEN ~`). Default 10,000. */
  readonly maxLen?: number;
  /** Dedicated connections for blocking reads at most. Default 64. */
  readonly maxBlockingReaders?: number;
  /** Idle dedicated connections kept for reuse. Default 4. */
  readonly maxIdleReaders?: number;
  /** Poll interval when every dedicated connection is busy. Default 50 ms. */
  readonly pollMs?: number;
}

// KEYS: stream, lastturn, turns. ARGV: turn id, field, value, maxlen, ttl.
const ADD = luaScript(`
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return id
`);

// KEYS: stream, lastturn, turns. ARGV: turn id, maxlen, ttl, then one value per chunk.
const ADD_MANY = luaScript(`
local ids = {}
for i = 4, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'd', ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return ids
`);

const DEFAULT_COUNT = 1_000;
const READY_TIMEOUT_MS = 1_000;

type RawEntry = [id: string, fields: string[]];

function toRead(raw: readonly RawEntry[]): TurnStreamRead {
  const entries: TurnStreamEntry[] = [];
  for (const [id, fields] of raw) {
    if (fields[0] === 'end') return { entries, ended: true };
    entries.push({ id, data: fields[1] ?? '' });
  }
  return { entries, ended: false };
}

function waitReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error('Redis reader did not become ready'));
    }, timeoutMs);
    client.once('ready', onReady);
  });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * A {@link TurnStreamStore} in Redis, shared by every orchestrator replica.
 *
 * @example
 * ```ts
 * const streams = createRedisTurnStreamStore({ redis: createRedisClient(process.env.REDIS_URL!) });
 * const id = await streams.append('s1', 't1', JSON.stringify({ type: 'start' }));
 * ```
 */
export function createRedisTurnStreamStore(options: RedisTurnStreamStoreOptions): TurnStreamStore {
  const { redis } = options;
  const prefix = options.prefix ?? 'keel';
  const ttlMs = options.ttlMs ?? DEFAULT_TURN_STREAM_TTL_MS;
  const maxLen = Math.max(1, options.maxLen ?? DEFAULT_TURN_STREAM_MAX_LEN);
  const maxBlocking = options.maxBlockingReaders ?? 64;
  const maxIdle = options.maxIdleReaders ?? 4;
  const pollMs = options.pollMs ?? 50;
  const idle: Redis[] = [];
  const busy = new Set<Redis>();
  let closed = false;

  const add = (sessionId: string, turnId: string, field: string, value: string) => {
    const k = sessionKeys(prefix, sessionId);
    return ADD.run(
      redis,
      [k.stream(turnId), k.lastTurn, k.turns],
      [turnId, field, value, maxLen, ttlMs],
    ) as Promise<string>;
  };

  const rangeAfter = async (key: string, after: string | undefined, count: number) => {
    const start = after === undefined ? '-' : `(${after}`;
    return toRead((await redis.xrange(key, start, '+', 'COUNT', count)) as RawEntry[]);
  };

  const borrow = async (): Promise<Redis | undefined> => {
    const reuse = idle.pop();
    if (reuse) {
      busy.add(reuse);
      return reuse;
    }
    if (busy.size >= maxBlocking) return undefined;
    // No command timeout here: the wait is bounded by BLOCK, with ioredis's blocking timeout
    // (BLOCK plus a grace) as the net for a connection that died without closing.
    const client = redis.duplicate({
      commandTimeout: undefined,
      blockingTimeout: 60_000,
      blockingTimeoutGrace: 1_000,
      enableOfflineQueue: false,
      lazyConnect: false,
    });
    client.on('error', () => {});
    busy.add(client);
    try {
      await waitReady(client, READY_TIMEOUT_MS);
    } catch (error) {
      busy.delete(client);
      client.disconnect();
      throw error;
    }
    return client;
  };

  const giveBack = (client: Redis, reusable: boolean) => {
    busy.delete(client);
    if (reusable && !closed && idle.length < maxIdle && client.status === 'ready') {
      idle.push(client);
    } else {
      client.disconnect();
    }
  };

  const blockingRead = async (
    key: string,
    after: string | undefined,
    count: number,
    blockMs: number,
    signal: AbortSignal | undefined,
  ): Promise<TurnStreamRead> => {
    const client = await borrow();
    if (!client) {
      // Every dedicated connection is busy: poll on the shared one instead.
      const deadline = Date.now() + blockMs;
      while (!signal?.aborted && Date.now() < deadline) {
        await sleep(Math.min(pollMs, deadline - Date.now()), signal);
        if (signal?.aborted) break;
        const read = await rangeAfter(key, after, count);
        if (read.entries.length > 0 || read.ended) return read;
      }
      return { entries: [], ended: false };
    }
    if (signal?.aborted) {
      giveBack(client, true);
      return { entries: [], ended: false };
    }
    // Closing the connection is the one way to end an XREAD BLOCK at once from this side.
    const onAbort = () => client.disconnect();
    signal?.addEventListener('abort', onAbort, { once: true });
    let reusable = false;
    try {
      const reply = (await client.xread(
        'COUNT',
        count,
        'BLOCK',
        Math.max(1, Math.ceil(blockMs)),
        'STREAMS',
        key,
        after ?? '0-0',
      )) as [string, RawEntry[]][] | null;
      reusable = true;
      return toRead(reply?.[0]?.[1] ?? []);
    } catch (error) {
      if (signal?.aborted || closed) return { entries: [], ended: false };
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      giveBack(client, reusable && !signal?.aborted);
    }
  };

  return {
    append: (sessionId, turnId, data) =>
      storeStep('turnStream.append', () => add(sessionId, turnId, 'd', data)),

    appendMany: (sessionId, turnId, data) =>
      storeStep('turnStream.append', async () => {
        if (data.length === 0) return [];
        const k = sessionKeys(prefix, sessionId);
        return (await ADD_MANY.run(
          redis,
          [k.stream(turnId), k.lastTurn, k.turns],
          [turnId, maxLen, ttlMs, ...data],
        )) as string[];
      }),

    end: (sessionId, turnId) =>
      storeStep('turnStream.end', async () => {
        await add(sessionId, turnId, 'end', '1');
      }),

    read: (sessionId, turnId, readOptions: ReadTurnStreamOptions = {}) =>
      storeStep('turnStream.read', async () => {
        const { signal } = readOptions;
        const after =
          readOptions.after !== undefined && isEntryId(readOptions.after)
            ? readOptions.after
            : undefined;
        const count = Math.max(1, readOptions.count ?? DEFAULT_COUNT);
        const key = sessionKeys(prefix, sessionId).stream(turnId);
        const first = await rangeAfter(key, after, count);
        const blockMs = readOptions.blockMs ?? 0;
        if (first.entries.length > 0 || first.ended || blockMs <= 0 || signal?.aborted || closed) {
          return first;
        }
        return blockingRead(key, after, count, blockMs, signal);
      }),

    ended: (sessionId, turnId) =>
      storeStep('turnStream.ended', async () => {
        const key = sessionKeys(prefix, sessionId).stream(turnId);
        const last = (await redis.xrevrange(key, '+', '-', 'COUNT', 1)) as RawEntry[];
        return last[0]?.[1][0] === 'end';
      }),

    latestTurn: (sessionId) =>
      storeStep(
        'turnStream.latestTurn',
        async () => (await redis.get(sessionKeys(prefix, sessionId).lastTurn)) ?? undefined,
      ),

    async close() {
      closed = true;
      for (const client of [...idle, ...busy]) client.disconnect();
      idle.length = 0;
      busy.clear();
    },
  };
}
