/**
 * The Redis meter (DESIGN.md sections 7 and 9). Every counter of a tenant carries the hash tag
 * `{t:<tenant>}`, so reserve, settle and release are each ONE Lua script on one Cluster slot.
 *
 * Keys (money in integer micro-dollars; `<…>` parts are URI-encoded):
 * - budgets, hashes `{spent, held}`:
 *   `keel:b:{t:<tenant>}:s:<sessionId>` (session idle TTL, 30 days),
 *   `keel:b:{t:<tenant>}:ud:<user>:<YYYY-MM-DD>` (2 days), `keel:b:{t:<tenant>}:tm:<YYYY-MM>` (63 days)
 * - holds: `keel:b:{t:<tenant>}:r:<reservationId>`, a hash `{state, amount, s, ud, tm}`, and the
 *   sorted set `keel:b:{t:<tenant>}:rz` of held ids scored by when the hold lapses
 * - usage, hashes `{calls, inputTokens, outputTokens, cacheReadTokens, cacheWriteTokens, cost}`:
 *   `keel:u:{t:<tenant>}:s:<sessionId>` (30 days idle), `…:ud:<user>:<day>`, `…:um:<user>:<model>`,
 *   `…:td:<day>` (tenant per day), `…:tmm:<YYYY-MM>:<model>` (tenant per month and model), all
 *   400 days; plus per-user indexes `…:ix:s|d|m:<user>` (sorted sets, scored by last use) that
 *   `usage()` reads.
 *
 * Crashed turns: a hold that is neither settled nor released within `holdTtlMs` is dropped by
 * the next reserve of the same tenant, which sweeps up to 100 lapsed ids from `rz` inside its
 * script (so the sweep is atomic with the check). A swept record stays as `expired` for a
 * while; a late settle then still counts the actual cost but subtracts no hold.
 *
 * Retries: each script is idempotent on the reservation id (a second reserve of the same id,
 * a second settle, a release after settle change nothing), so ioredis re-sending a command
 * after a reconnect cannot double-count.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type {
  BudgetKind,
  Meter,
  MeterScope,
  ModelUsage,
  Reservation,
  ReserveResult,
  UsageReport,
  UsageTotals,
} from './meter.js';
import { MeterUnavailableError } from './meter-error.js';
import {
  METER_DEFAULTS,
  addCounter,
  dayOf,
  emptyCounter,
  fromMicros,
  holdMicros,
  limitsInOrder,
  monthOf,
  toMicros,
  toTotals,
  tokenCount,
} from './meter-units.js';
import type { UsageCounter } from './meter-units.js';

/** Options of {@link createRedisMeter}. */
export interface RedisMeterOptions {
  /**
   * A client that fails fast while Redis is down (see `meterRedisOptions()`: `commandTimeout`
   * 500, `enableOfflineQueue: false`). The caller owns it; `close()` leaves it open.
   */
  redis: Redis;
  /** Key prefix (default `keel`). */
  prefix?: string;
  now?: () => number;
  ids?: () => string;
  /** A hold not settled or released within this time is dropped (default 15 min). */
  holdTtlMs?: number;
  /** Session counters expire after this idle time (default 30 days). */
  sessionTtlMs?: number;
  /** Day and per-model usage is kept this long (default 400 days). */
  dayTtlMs?: number;
  /** Longest any meter call waits for Redis, whatever the client does (default 750 ms). */
  timeoutMs?: number;
}

const KINDS: readonly BudgetKind[] = ['session', 'user-day', 'tenant-month'];
const FINISHED_RECORD_MS = 3_600_000;
const DAY_BUDGET_TTL_MS = 2 * 24 * 3_600_000;
const MONTH_TTL_MS = 63 * 24 * 3_600_000;
/** Most entries `usage()` reads per index (sessions, days, models). */
const USAGE_INDEX_LIMIT = 1_000;

/*
 * KEYS: 1 session budget, 2 user-day budget, 3 tenant-month budget, 4 holds zset, 5 this hold
 * ARGV: 1 amount, 2-4 limits (-1 = none), 5 now, 6 hold TTL, 7-9 budget TTLs, 10 hold key
 *       prefix, 11 id, 12 finished-record TTL, 13 record TTL while held
 * The sweep touches hold records and budgets named inside records: all carry this tenant's
 * hash tag, so they are on the script's slot.
 */
const RESERVE_LUA = `
local now = tonumber(ARGV[5])
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)
for _, rid in ipairs(lapsed) do
  local rkey = ARGV[10] .. rid
  local r = redis.call('HMGET', rkey, 'state', 'amount', 's', 'ud', 'tm')
  if r[1] == 'held' then
    local amt = tonumber(r[2]) or 0
    for i = 3, 5 do
      if r[i] and redis.call('EXISTS', r[i]) == 1 then redis.call('HINCRBY', r[i], 'held', -amt) end
    end
    redis.call('HSET', rkey, 'state', 'expired')
    redis.call('PEXPIRE', rkey, ARGV[12])
  end
  redis.call('ZREM', KEYS[4], rid)
end
if redis.call('EXISTS', KEYS[5]) == 1 then return {1} end
local amount = tonumber(ARGV[1])
for i = 1, 3 do
  local limit = tonumber(ARGV[i + 1])
  if limit >= 0 then
    local v = redis.call('HMGET', KEYS[i], 'spent', 'held')
    local used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
    if used + amount > limit then return {0, i, limit, used} end
  end
end
for i = 1, 3 do
  redis.call('HINCRBY', KEYS[i], 'held', amount)
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[i + 6]) then redis.call('PEXPIRE', KEYS[i], ARGV[i + 6]) end
end
redis.call('HSET', KEYS[5], 'state', 'held', 'amount', amount, 's', KEYS[1], 'ud', KEYS[2], 'tm', KEYS[3])
redis.call('PEXPIRE', KEYS[5], ARGV[13])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[6]), ARGV[11])
redis.call('PEXPIRE', KEYS[4], ARGV[13])
return {1}
`;

/*
 * KEYS: 1-3 budgets, 4 this hold, 5 holds zset, 6 usage session, 7 usage user-day,
 *       8 usage user-model, 9 usage tenant-day, 10 usage tenant-month-model,
 *       11-13 user indexes (sessions, days, models)
 * ARGV: 1 cost, 2 input, 3 output, 4 cache read, 5 cache write, 6 now, 7-9 budget TTLs,
 *       10 session usage TTL, 11 day usage TTL, 12 finished-record TTL, 13 id,
 *       14 session id, 15 day, 16 model
 */
const SETTLE_LUA = `
local state = redis.call('HGET', KEYS[4], 'state')
if state == 'settled' or state == 'released' then return 0 end
if state == 'held' then
  local amt = tonumber(redis.call('HGET', KEYS[4], 'amount')) or 0
  for i = 1, 3 do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HINCRBY', KEYS[i], 'held', -amt) end
  end
end
local cost = tonumber(ARGV[1])
for i = 1, 3 do
  redis.call('HINCRBY', KEYS[i], 'spent', cost)
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[i + 6]) then redis.call('PEXPIRE', KEYS[i], ARGV[i + 6]) end
end
redis.call('HSET', KEYS[4], 'state', 'settled')
redis.call('PEXPIRE', KEYS[4], ARGV[12])
redis.call('ZREM', KEYS[5], ARGV[13])
for k = 6, 10 do
  redis.call('HINCRBY', KEYS[k], 'calls', 1)
  redis.call('HINCRBY', KEYS[k], 'inputTokens', ARGV[2])
  redis.call('HINCRBY', KEYS[k], 'outputTokens', ARGV[3])
  redis.call('HINCRBY', KEYS[k], 'cacheReadTokens', ARGV[4])
  redis.call('HINCRBY', KEYS[k], 'cacheWriteTokens', ARGV[5])
  redis.call('HINCRBY', KEYS[k], 'cost', cost)
  if k == 6 then redis.call('PEXPIRE', KEYS[k], ARGV[10]) else redis.call('PEXPIRE', KEYS[k], ARGV[11]) end
end
local now = tonumber(ARGV[6])
redis.call('ZADD', KEYS[11], now, ARGV[14])
redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', now - tonumber(ARGV[10]))
redis.call('ZADD', KEYS[12], now, ARGV[15])
redis.call('ZADD', KEYS[13], now, ARGV[16])
for k = 11, 13 do
  if k > 11 then redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now - tonumber(ARGV[11])) end
  redis.call('PEXPIRE', KEYS[k], ARGV[11])
end
return 1
`;

/*
 * KEYS: 1-3 budgets, 4 this hold, 5 holds zset
 * ARGV: 1 finished-record TTL, 2 id
 */
const RELEASE_LUA = `
local r = redis.call('HMGET', KEYS[4], 'state', 'amount')
if r[1] ~= 'held' then return 0 end
local amt = tonumber(r[2]) or 0
for i = 1, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HINCRBY', KEYS[i], 'held', -amt) end
end
redis.call('HSET', KEYS[4], 'state', 'released')
redis.call('PEXPIRE', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[2])
return 1
`;

type ScriptArg = string | number;
interface MeterCommands {
  keelMeterReserve(...args: ScriptArg[]): Promise<number[]>;
  keelMeterSettle(...args: ScriptArg[]): Promise<number>;
  keelMeterRelease(...args: ScriptArg[]): Promise<number>;
}

const USAGE_FIELDS = [
  'calls',
  'inputTokens',
  'outputTokens',
  'cacheReadTokens',
  'cacheWriteTokens',
  'cost',
] as const;

/**
 * Create a meter on Redis.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * const redis = new Redis('redis://127.0.0.1:6379', meterRedisOptions());
 * const meter = createRedisMeter({ redis });
 * const r = await meter.reserve({ tenant: 'acme', user: 'alice', sessionId: 's1' }, { sessionUsd: 1 }, 0.05);
 * ```
 */
export function createRedisMeter(options: RedisMeterOptions): Meter {
  const { redis } = options;
  const prefix = options.prefix ?? 'keel';
  const now = options.now ?? Date.now;
  const ids = options.ids ?? randomUUID;
  const holdTtlMs = options.holdTtlMs ?? METER_DEFAULTS.holdTtlMs;
  const sessionTtlMs = options.sessionTtlMs ?? METER_DEFAULTS.sessionTtlMs;
  const dayTtlMs = options.dayTtlMs ?? METER_DEFAULTS.dayTtlMs;
  const timeoutMs = options.timeoutMs ?? 750;
  const budgetTtls = [sessionTtlMs, DAY_BUDGET_TTL_MS, MONTH_TTL_MS] as const;
  /** A held record outlives any budget it counts against, so the sweep can still find it. */
  const heldRecordTtlMs = Math.max(MONTH_TTL_MS, sessionTtlMs) + holdTtlMs;

  // defineCommand runs EVALSHA and falls back to EVAL after NOSCRIPT (e.g. a restarted Redis).
  redis.defineCommand('keelMeterReserve', { numberOfKeys: 5, lua: RESERVE_LUA });
  redis.defineCommand('keelMeterSettle', { numberOfKeys: 13, lua: SETTLE_LUA });
  redis.defineCommand('keelMeterRelease', { numberOfKeys: 5, lua: RELEASE_LUA });
  const commands = redis as unknown as MeterCommands;

  const enc = encodeURIComponent;
  const budgetBase = (tenant: string) => `${prefix}:b:{t:${enc(tenant)}}`;
  const usageBase = (tenant: string) => `${prefix}:u:{t:${enc(tenant)}}`;
  const budgetKeys = (scope: MeterScope, at: number) => {
    const base = budgetBase(scope.tenant);
    return [
      `${base}:s:${enc(scope.sessionId)}`,
      `${base}:ud:${enc(scope.user)}:${dayOf(at)}`,
      `${base}:tm:${monthOf(at)}`,
    ] as const;
  };
  const indexKeys = (tenant: string, user: string) => {
    const base = usageBase(tenant);
    return [
      `${base}:ix:s:${enc(user)}`,
      `${base}:ix:d:${enc(user)}`,
      `${base}:ix:m:${enc(user)}`,
    ] as const;
  };

  /** Runs one Redis step within `timeoutMs`; any failure is the store being unavailable. */
  async function guarded<T>(operation: string, step: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([step(), deadline]);
    } catch (cause) {
      throw new MeterUnavailableError(operation, { cause });
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async reserve(scope, limits, amountUsd): Promise<ReserveResult> {
      const amount = holdMicros(amountUsd);
      const t = now();
      const id = ids();
      const base = budgetBase(scope.tenant);
      const keys = budgetKeys(scope, t);
      const limitMicros = limitsInOrder(limits).map((l) => l ?? -1);
      const reply = await guarded('reserve', () =>
        commands.keelMeterReserve(
          ...keys,
          `${base}:rz`,
          `${base}:r:${id}`,
          amount,
          ...limitMicros,
          t,
          holdTtlMs,
          ...budgetTtls,
          `${base}:r:`,
          id,
          FINISHED_RECORD_MS,
          heldRecordTtlMs,
        ),
      );
      if (reply[0] === 1) {
        return { ok: true, reservation: { id, scope, amountUsd: fromMicros(amount), at: t } };
      }
      return {
        ok: false,
        kind: KINDS[(reply[1] ?? 1) - 1] ?? 'session',
        limitUsd: fromMicros(reply[2] ?? 0),
        usedUsd: fromMicros(reply[3] ?? 0),
      };
    },

    async settle(reservation: Reservation, usage: ModelUsage): Promise<void> {
      const t = now();
      const { scope, at, id } = reservation;
      const base = budgetBase(scope.tenant);
      const ubase = usageBase(scope.tenant);
      const day = dayOf(at);
      await guarded('settle', () =>
        commands.keelMeterSettle(
          ...budgetKeys(scope, at),
          `${base}:r:${id}`,
          `${base}:rz`,
          `${ubase}:s:${enc(scope.sessionId)}`,
          `${ubase}:ud:${enc(scope.user)}:${day}`,
          `${ubase}:um:${enc(scope.user)}:${enc(usage.model)}`,
          `${ubase}:td:${day}`,
          `${ubase}:tmm:${monthOf(at)}:${enc(usage.model)}`,
          ...indexKeys(scope.tenant, scope.user),
          toMicros(usage.costUsd),
          tokenCount(usage.inputTokens),
          tokenCount(usage.outputTokens),
          tokenCount(usage.cacheReadTokens),
          tokenCount(usage.cacheWriteTokens),
          t,
          ...budgetTtls,
          sessionTtlMs,
          dayTtlMs,
          FINISHED_RECORD_MS,
          id,
          scope.sessionId,
          day,
          usage.model,
        ),
      );
    },

    async release(reservation: Reservation): Promise<void> {
      const base = budgetBase(reservation.scope.tenant);
      await guarded('release', () =>
        commands.keelMeterRelease(
          ...budgetKeys(reservation.scope, reservation.at),
          `${base}:r:${reservation.id}`,
          `${base}:rz`,
          FINISHED_RECORD_MS,
          reservation.id,
        ),
      );
    },

    async usage(tenant: string, user: string): Promise<UsageReport> {
      const ubase = usageBase(tenant);
      const [ixs, ixd, ixm] = indexKeys(tenant, user);
      const [sessions, days, models] = await guarded('usage', async () => {
        const replies = await redis
          .multi()
          .zrevrange(ixs, 0, USAGE_INDEX_LIMIT - 1)
          .zrevrange(ixd, 0, USAGE_INDEX_LIMIT - 1)
          .zrevrange(ixm, 0, USAGE_INDEX_LIMIT - 1)
          .exec();
        return (replies ?? []).map(([error, value]) => {
          if (error) throw error;
          return value as string[];
        });
      });
      const wanted: [group: 0 | 1 | 2, name: string, key: string][] = [
        ...(sessions ?? []).map((s): [0, string, string] => [0, s, `${ubase}:s:${enc(s)}`]),
        ...(days ?? []).map((d): [1, string, string] => [1, d, `${ubase}:ud:${enc(user)}:${d}`]),
        ...(models ?? []).map((m): [2, string, string] => [
          2,
          m,
          `${ubase}:um:${enc(user)}:${enc(m)}`,
        ]),
      ];
      const hashes = await guarded('usage', async () => {
        if (wanted.length === 0) return [];
        const pipeline = redis.pipeline();
        for (const [, , key] of wanted) pipeline.hmget(key, ...USAGE_FIELDS);
        return ((await pipeline.exec()) ?? []).map(([error, value]) => {
          if (error) throw error;
          return value as (string | null)[];
        });
      });
      const groups: [string, UsageTotals][][] = [[], [], []];
      const total = emptyCounter();
      wanted.forEach(([group, name], i) => {
        const fields = hashes[i];
        if (!fields || fields[0] === null) return; // expired since it was indexed
        const n = (j: number) => Number(fields[j] ?? 0);
        const counter: UsageCounter = {
          calls: n(0),
          inputTokens: n(1),
          outputTokens: n(2),
          cacheReadTokens: n(3),
          cacheWriteTokens: n(4),
          costMicros: n(5),
        };
        if (group === 1) addCounter(total, counter);
        groups[group]!.push([name, toTotals(counter)]);
      });
      return {
        tenant,
        user,
        total: toTotals(total),
        bySession: Object.fromEntries(groups[0]!),
        byDay: Object.fromEntries(groups[1]!),
        byModel: Object.fromEntries(groups[2]!),
      };
    },

    async close(): Promise<void> {},
  };
}
