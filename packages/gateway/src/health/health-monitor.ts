/**
 * Health checks of every replica URL of every registered server.
 *
 * With Redis, one gateway replica at a time probes (it holds a lease); it writes the results to
 * a hash and publishes, and the other replicas read the hash on each message and each interval.
 * The lease is renewed by its holder with a compare-and-set script and released on close, so
 * another replica takes over at its next tick (or when the lease expires, after a crash).
 *
 * Redis layout (`<prefix>` defaults to `keel:gw`; the braces keep lease and state in one
 * Redis Cluster slot, so a result write can be fenced by the lease in one script):
 * - `{<prefix>:health}:lease`: the holder's replica id, `PX intervalMs * 2`;
 * - `{<prefix>:health}:state`: hash replica URL → {@link ReplicaHealth} JSON, plus `_seq`, bumped
 *   by every write so an older read never replaces a newer one;
 * - channel `<prefix>:health:changed`: the new `_seq` after each write.
 *
 * A replica is unhealthy after `unhealthyAfter` consecutive failed probes (the probe threw, or
 * did not settle within `timeoutMs`; its signal is aborted then) and healthy again after one
 * success. A replica never checked counts as healthy.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config/gateway-config.js';

/** The health of one replica URL. */
export interface ReplicaHealth {
  serverId: string;
  replica: string;
  healthy: boolean;
  consecutiveFailures: number;
  /** Epoch ms of the last probe's end. */
  lastCheckedAt: number;
}

/** Checks one replica URL of `server`; resolves when healthy, rejects otherwise. */
export type HealthProbe = (
  server: ServerConfig,
  replica: string,
  signal: AbortSignal,
) => Promise<void>;

/** The timers the monitor uses; default the global ones, unref'd. */
export interface HealthTimers {
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Options of {@link createHealthMonitor}. */
export interface HealthMonitorOptions {
  /** Where the servers to check come from; read at every round. */
  registry: { list(): ServerConfig[] };
  probe: HealthProbe;
  /** Shared with the other gateway replicas; without it, this replica probes by itself. */
  redis?: Redis;
  /** Default `keel:gw`. */
  keyPrefix?: string;
  /** This gateway replica's id (the lease holder's value). */
  replicaId: string;
  intervalMs: number;
  /** A probe not settled by then counts as failed; its signal is aborted. */
  timeoutMs: number;
  /** Consecutive failures before a replica URL is marked unhealthy. */
  unhealthyAfter: number;
  now?: () => number;
  timers?: HealthTimers;
  logger?: Pick<Logger, 'debug' | 'warn'>;
  /** A replica URL turned unhealthy (`false`) or recovered (`true`), as this replica saw it. */
  onChange?: (replica: string, healthy: boolean) => void;
}

/** The health monitor of one gateway replica. */
export interface HealthMonitor {
  /** Check now, then every `intervalMs`. */
  start(): void;
  /** Stop, abort running probes, and release the lease if held. */
  close(): Promise<void>;
  /** One tick now: take or renew the lease, then probe (holder) or read the results. */
  checkNow(): Promise<void>;
  /** `false` only for a replica URL marked unhealthy; unknown URLs are healthy. */
  isHealthy(replica: string): boolean;
  /** Every replica URL with a known state, of servers still registered, in registry order. */
  snapshot(): ReplicaHealth[];
  /** Whether this replica holds the probing lease (always `true` without Redis). */
  isProbing(): boolean;
}

// Renew only a lease we hold; release likewise. A plain SET/DEL could touch another holder's
// lease after ours expired.
const RENEW_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

// Fenced by the lease: a holder that lost its lease mid-round (a long pause) writes nothing.
// ARGV: owner, channel, then field/value pairs; fields not written are stale and removed.
const WRITE_SCRIPT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local keep = {}
for i = 3, #ARGV, 2 do keep[ARGV[i]] = true end
for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
  if field ~= '_seq' and not keep[field] then redis.call('HDEL', KEYS[2], field) end
end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
local seq = redis.call('HINCRBY', KEYS[2], '_seq', 1)
redis.call('PUBLISH', ARGV[2], seq)
return seq`;

const SEQ_FIELD = '_seq';

const defaultTimers: HealthTimers = {
  setInterval(callback, ms) {
    const handle = setInterval(callback, ms);
    handle.unref();
    return handle;
  },
  clearInterval: (handle) => clearInterval(handle as ReturnType<typeof setInterval>),
  setTimeout(callback, ms) {
    const handle = setTimeout(callback, ms);
    handle.unref();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * Make the health monitor of one gateway replica.
 *
 * @example
 * ```ts
 * import { createHealthMonitor } from './health-monitor.js';
 *
 * const health = createHealthMonitor({
 *   registry: { list: () => [] },
 *   probe: async (_server, replica, signal) => {
 *     const res = await fetch(replica, { method: 'HEAD', signal });
 *     if (res.status >= 500) throw new Error(`status ${res.status}`);
 *   },
 *   replicaId: 'gw-1',
 *   intervalMs: 5_000,
 *   timeoutMs: 2_000,
 *   unhealthyAfter: 3,
 * });
 * health.start();
 * health.isHealthy('http://10.0.0.7:7101/mcp'); // true until 3 probes in a row fail
 * await health.close();
 * ```
 */
export function createHealthMonitor(options: HealthMonitorOptions): HealthMonitor {
  const { redis, registry, logger } = options;
  const now = options.now ?? Date.now;
  const timers = options.timers ?? defaultTimers;
  const prefix = options.keyPrefix ?? 'keel:gw';
  const leaseKey = `{${prefix}:health}:lease`;
  const stateKey = `{${prefix}:health}:state`;
  const channel = `${prefix}:health:changed`;
  const leaseMs = options.intervalMs * 2;
  const unhealthyAfter = Math.max(1, options.unhealthyAfter);

  const states = new Map<string, ReplicaHealth>();
  const probes = new Set<AbortController>();
  let holding = !redis;
  let appliedSeq = 0;
  let interval: unknown;
  let subscriber: Redis | undefined;
  let closed = false;
  let coordinating: Promise<boolean> | undefined;
  let roundRunning: Promise<void> | undefined;

  /** Replace the known states; report each health change. */
  function applyStates(next: Iterable<ReplicaHealth>): void {
    const seen = new Set<string>();
    for (const state of next) {
      seen.add(state.replica);
      const before = states.get(state.replica);
      states.set(state.replica, state);
      // Unknown counts as healthy, so a first healthy result is no change.
      if ((before?.healthy ?? true) !== state.healthy) {
        logger?.debug({ replica: state.replica, healthy: state.healthy }, 'replica health changed');
        try {
          options.onChange?.(state.replica, state.healthy);
        } catch (error) {
          logger?.warn({ err: error }, 'health onChange listener threw');
        }
      }
    }
    for (const replica of [...states.keys()]) if (!seen.has(replica)) states.delete(replica);
  }

  /** Each replica URL to check, with the first server that lists it. */
  function targets(): Array<{ server: ServerConfig; replica: string }> {
    const out = new Map<string, ServerConfig>();
    for (const server of registry.list()) {
      for (const replica of server.urls) if (!out.has(replica)) out.set(replica, server);
    }
    return [...out].map(([replica, server]) => ({ server, replica }));
  }

  /** One probe under its timeout: resolves true (healthy) or false, never rejects. */
  function probeOnce(server: ServerConfig, replica: string): Promise<boolean> {
    const controller = new AbortController();
    probes.add(controller);
    const timer = timers.setTimeout(() => {
      controller.abort(new Error(`health probe timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    let onAbort: (() => void) | undefined;
    // A probe that ignores its signal still loses the race at timeoutMs (or on close).
    const aborted = new Promise<false>((resolve) => {
      onAbort = () => resolve(false);
      controller.signal.addEventListener('abort', onAbort, { once: true });
    });
    const probed = Promise.resolve()
      .then(() => options.probe(server, replica, controller.signal))
      .then(
        () => !controller.signal.aborted,
        () => false,
      );
    return Promise.race([probed, aborted]).finally(() => {
      timers.clearTimeout(timer);
      if (onAbort) controller.signal.removeEventListener('abort', onAbort);
      probes.delete(controller);
    });
  }

  /** Probe every replica URL and work out the next states. */
  async function probeAll(): Promise<ReplicaHealth[]> {
    const list = targets();
    const results = await Promise.all(
      list.map(({ server, replica }) => probeOnce(server, replica)),
    );
    const checkedAt = now();
    return list.map(({ server, replica }, i) => {
      const ok = results[i]!;
      const before = states.get(replica);
      const failures = ok ? 0 : (before?.consecutiveFailures ?? 0) + 1;
      const wasHealthy = before?.healthy ?? true;
      return {
        serverId: server.id,
        replica,
        healthy: ok || (wasHealthy && failures < unhealthyAfter),
        consecutiveFailures: failures,
        lastCheckedAt: checkedAt,
      };
    });
  }

  /** Read the holder's results (a newer `_seq` than what was applied). */
  async function readShared(): Promise<void> {
    if (!redis) return;
    const all = await redis.hgetall(stateKey);
    const seq = Number(all[SEQ_FIELD] ?? 0);
    // Replies on one connection come in order, so a different `_seq` is newer (or the hash was
    // reset, and then it is the truth too).
    if (seq === appliedSeq) return;
    appliedSeq = seq;
    const registered = new Set(targets().map((t) => t.replica));
    const next: ReplicaHealth[] = [];
    for (const [field, raw] of Object.entries(all)) {
      if (field === SEQ_FIELD || !registered.has(field)) continue;
      const state = parseState(raw);
      if (state && state.replica === field) next.push(state);
    }
    applyStates(next);
  }

  /** Take the lease, or keep it. */
  async function leaseStep(): Promise<void> {
    if (!redis) return;
    const wasHolding = holding;
    // Renew first even when not holding: a lease with our id is ours (e.g. after a lost reply).
    holding = Number(await redis.eval(RENEW_SCRIPT, 1, leaseKey, options.replicaId, leaseMs)) === 1;
    if (!holding) {
      holding = (await redis.set(leaseKey, options.replicaId, 'PX', leaseMs, 'NX')) === 'OK';
    }
    if (holding && !wasHolding) {
      logger?.debug({ replicaId: options.replicaId }, 'took the health-check lease');
      // Continue from the last holder's failure counts.
      await readShared();
    }
  }

  /**
   * Take or renew the lease; a non-holder reads the holder's results. Resolves whether this
   * replica probes this interval.
   */
  function coordinate(): Promise<boolean> {
    if (!redis) return Promise.resolve(true);
    coordinating ??= (async () => {
      try {
        await leaseStep();
        if (!holding) await readShared();
        return holding;
      } catch (error) {
        // Redis is down: better that every replica probes than that nobody does.
        logger?.warn({ err: error }, 'health lease unavailable; probing locally');
        holding = false;
        return true;
      }
    })().finally(() => {
      coordinating = undefined;
    });
    return coordinating;
  }

  /** Probe, share (holder), apply. Rounds never overlap: a second caller waits for the first. */
  function runRound(): Promise<void> {
    roundRunning ??= (async () => {
      const next = await probeAll();
      if (closed) return;
      if (redis && holding) {
        const args: string[] = [];
        for (const state of next) args.push(state.replica, JSON.stringify(state));
        try {
          const seq = Number(
            await redis.eval(
              WRITE_SCRIPT,
              2,
              leaseKey,
              stateKey,
              options.replicaId,
              channel,
              ...args,
            ),
          );
          if (seq === 0) {
            // Lost the lease during the round: the new holder's results win.
            holding = false;
            return;
          }
          appliedSeq = seq;
        } catch (error) {
          logger?.warn({ err: error }, 'could not share health results');
        }
      }
      applyStates(next);
    })()
      .catch((error: unknown) => logger?.warn({ err: error }, 'health round failed'))
      .finally(() => {
        roundRunning = undefined;
      });
    return roundRunning;
  }

  // The lease is renewed at every tick, even while a long round runs, so it never lapses
  // under its holder.
  async function tick(): Promise<void> {
    if (closed) return;
    const probeLocally = await coordinate();
    if (probeLocally && !closed) await runRound();
  }

  function subscribe(): void {
    if (!redis) return;
    const sub = redis.duplicate();
    subscriber = sub;
    sub.on('error', (error: Error) =>
      logger?.warn({ errorName: error.name }, 'health subscriber error'),
    );
    sub.on('message', (from: string) => {
      if (from !== channel || holding || closed) return;
      readShared().catch((error: unknown) =>
        logger?.warn({ err: error }, 'could not read shared health'),
      );
    });
    // On every (re)connect; subscribing twice to one channel is harmless.
    sub.on('ready', () => {
      if (closed) return;
      sub
        .subscribe(channel)
        .catch((error: unknown) =>
          logger?.warn({ err: error }, 'could not subscribe to health changes'),
        );
    });
  }

  return {
    start() {
      if (interval !== undefined || closed) return;
      subscribe();
      void tick();
      interval = timers.setInterval(() => void tick(), options.intervalMs);
    },

    async close() {
      if (closed) return;
      closed = true;
      if (interval !== undefined) timers.clearInterval(interval);
      interval = undefined;
      for (const controller of probes) controller.abort(new Error('health monitor closed'));
      await Promise.all([coordinating, roundRunning]);
      const sub = subscriber;
      subscriber = undefined;
      if (sub) {
        if (sub.status === 'ready') await sub.quit().catch(() => sub.disconnect());
        else sub.disconnect();
      }
      if (redis && holding) {
        holding = false;
        await redis
          .eval(RELEASE_SCRIPT, 1, leaseKey, options.replicaId)
          .catch((error: unknown) => logger?.warn({ err: error }, 'could not release the lease'));
      }
    },

    checkNow: () => tick(),

    isHealthy: (replica) => states.get(replica)?.healthy ?? true,

    snapshot() {
      const out: ReplicaHealth[] = [];
      for (const { replica } of targets()) {
        const state = states.get(replica);
        if (state) out.push({ ...state });
      }
      return out;
    },

    isProbing: () => holding,
  };
}

function parseState(raw: string): ReplicaHealth | undefined {
  try {
    const value = JSON.parse(raw) as Partial<ReplicaHealth>;
    if (
      typeof value.serverId === 'string' &&
      typeof value.replica === 'string' &&
      typeof value.healthy === 'boolean' &&
      typeof value.consecutiveFailures === 'number' &&
      typeof value.lastCheckedAt === 'number'
    ) {
      return value as ReplicaHealth;
    }
  } catch {
    // fall through
  }
  return undefined;
}
