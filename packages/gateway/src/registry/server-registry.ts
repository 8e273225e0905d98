/**
 * The registry of logical tool servers: the static ones of the config file, plus the ones an
 * admin registered at run time. Admin-registered servers live in Redis and every change is
 * published, so every gateway replica applies it at once (DESIGN.md section 11: no sticky
 * sessions, any replica serves any request).
 *
 * Redis layout (`<prefix>` defaults to `keel:gw`):
 * - hash `<prefix>:servers`: server id → `{"rev":<n>,"server":<ServerConfig>}`, plus the field
 *   `_rev`, a counter bumped by every change (server ids never contain `_`, so it cannot clash);
 * - channel `<prefix>:servers:changed`: one message per change, published by the same Lua script
 *   that writes the hash.
 *
 * Revisions make replicas converge whatever order they see a write's reply, its message and a
 * reload in: a change is applied only when its revision is newer than the one already applied
 * for that id (deletions included).
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redisReady } from '@keel/tool-sdk';
import { serverSchema } from '../config/gateway-config.js';
import type { ServerConfig } from '../config/gateway-config.js';
import { GatewayError } from '../errors/gateway-error.js';

/** What changed in a {@link ServerRegistry}. */
export interface RegistryChange {
  kind: 'registered' | 'updated' | 'deregistered';
  id: string;
}

/** Options of {@link createServerRegistry}. */
export interface ServerRegistryOptions {
  /** Servers of the config file: always present, never changed through the registry. */
  staticServers: readonly ServerConfig[];
  /** Shared by every gateway replica; without it, registered servers live in this process. */
  redis?: Redis;
  /** Prefix of the registry's keys and channel; default `keel:gw`. */
  keyPrefix?: string;
  logger?: Pick<Logger, 'info' | 'warn'>;
  /** How long {@link ServerRegistry.start} waits for Redis; default 5 s. */
  connectTimeoutMs?: number;
}

/** The servers this gateway replica knows. */
export interface ServerRegistry {
  /** Load the registered servers from Redis and subscribe to changes. No-op without Redis. */
  start(): Promise<void>;
  /** Every server: static ones first in config order, then registered ones by id. */
  list(): ServerConfig[];
  get(id: string): ServerConfig | undefined;
  /** Whether `id` comes from the config file (cannot be changed or removed at run time). */
  isStatic(id: string): boolean;
  /**
   * Validate `input` with `serverSchema` and register it (or replace the registered server of
   * that id). Bad input: `GatewayError` `INVALID_INPUT` whose message and `details.issues`
   * name each field; a static id: `CONFLICT`; Redis unreachable: `UNAVAILABLE`.
   */
  register(input: unknown): Promise<ServerConfig>;
  /** Remove a registered server; `false` when none had that id. A static id: `CONFLICT`. */
  deregister(id: string): Promise<boolean>;
  /** Called for every change this replica applies, its own and other replicas' alike. */
  onChange(listener: (event: RegistryChange) => void): () => void;
  /** Unsubscribe. Does not disconnect the Redis client it was given. */
  close(): Promise<void>;
}

/** One field of the input that failed validation. */
export interface InvalidField {
  /** Dotted path, e.g. `urls.0` or `policies.retry.maxAttempts`; empty for the whole value. */
  path: string;
  message: string;
}

type Change =
  | { kind: 'put'; id: string; rev: number; server: unknown }
  | { kind: 'delete'; id: string; rev: number };

// HINCRBY + HSET + PUBLISH in one script: the revision order, the hash and the message order
// are the same for every replica. The JSON is concatenated rather than re-encoded with cjson,
// which would turn empty arrays into objects.
const PUT_SCRIPT = `
local rev = redis.call('HINCRBY', KEYS[1], '_rev', 1)
redis.call('HSET', KEYS[1], ARGV[1], '{"rev":' .. rev .. ',"server":' .. ARGV[2] .. '}')
redis.call('PUBLISH', ARGV[3], '{"kind":"put","id":' .. ARGV[4] .. ',"rev":' .. rev .. ',"server":' .. ARGV[2] .. '}')
return rev`;

const DELETE_SCRIPT = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local rev = redis.call('HINCRBY', KEYS[1], '_rev', 1)
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], '{"kind":"delete","id":' .. ARGV[3] .. ',"rev":' .. rev .. '}')
return rev`;

const REV_FIELD = '_rev';

/**
 * Make the registry of one gateway replica.
 *
 * @example
 * ```ts
 * import { createServerRegistry } from './server-registry.js';
 * import { serverSchema } from '../config/gateway-config.js';
 *
 * const registry = createServerRegistry({
 *   staticServers: [serverSchema.parse({ id: 'orders', urls: ['http://10.0.0.7:7101/mcp'] })],
 * });
 * await registry.start();
 * await registry.register({ id: 'billing', urls: ['http://10.0.0.8:7102/mcp'] });
 * registry.list().map((s) => s.id); // ['orders', 'billing']
 * ```
 */
export function createServerRegistry(options: ServerRegistryOptions): ServerRegistry {
  const { redis, logger } = options;
  const prefix = options.keyPrefix ?? 'keel:gw';
  const hashKey = `${prefix}:servers`;
  const channel = `${prefix}:servers:changed`;

  const statics = new Map<string, ServerConfig>();
  for (const server of options.staticServers) {
    if (statics.has(server.id)) {
      throw new GatewayError('INVALID_INPUT', `Server id "${server.id}" is configured twice`, {
        details: { issues: [{ path: 'servers', message: `duplicate id ${server.id}` }] },
      });
    }
    statics.set(server.id, server);
  }
  const dynamic = new Map<string, ServerConfig>();
  // Last revision applied per id, deletions included, so an older change never wins.
  const revisions = new Map<string, number>();
  let highestRevision = 0;
  const listeners = new Set<(event: RegistryChange) => void>();
  let subscriber: Redis | undefined;
  let closed = false;

  function emit(event: RegistryChange): void {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (error) {
        logger?.warn({ err: error, change: event }, 'registry listener threw');
      }
    }
  }

  function apply(change: Change): void {
    if (statics.has(change.id)) {
      logger?.warn({ server: change.id }, 'a registered server shadows a static one; ignored');
      return;
    }
    if (change.rev <= (revisions.get(change.id) ?? 0)) return;
    if (change.kind === 'delete') {
      revisions.set(change.id, change.rev);
      highestRevision = Math.max(highestRevision, change.rev);
      if (dynamic.delete(change.id)) emit({ kind: 'deregistered', id: change.id });
      return;
    }
    const parsed = serverSchema.safeParse(change.server);
    if (!parsed.success || parsed.data.id !== change.id) {
      // Written by a replica of another version, or by hand: skip it rather than fail.
      logger?.warn({ server: change.id }, 'ignoring an invalid registered server from Redis');
      return;
    }
    revisions.set(change.id, change.rev);
    highestRevision = Math.max(highestRevision, change.rev);
    const before = dynamic.get(change.id);
    dynamic.set(change.id, parsed.data);
    if (!before) emit({ kind: 'registered', id: change.id });
    else if (JSON.stringify(before) !== JSON.stringify(parsed.data)) {
      emit({ kind: 'updated', id: change.id });
    }
  }

  /** Bring the local view up to the hash (at start, and after the subscriber reconnects). */
  async function reload(): Promise<void> {
    if (!redis) return;
    const all = await redis.hgetall(hashKey);
    const revision = Number(all[REV_FIELD] ?? 0);
    if (revision < highestRevision) {
      // The hash was reset (e.g. a fresh Redis): its revisions start again.
      logger?.warn({ key: hashKey }, 'registry revisions went back; reloading from scratch');
      revisions.clear();
      highestRevision = 0;
    }
    for (const [id, raw] of Object.entries(all)) {
      if (id === REV_FIELD) continue;
      const entry = parseJson(raw) as { rev?: unknown; server?: unknown } | undefined;
      if (typeof entry?.rev !== 'number') {
        logger?.warn({ server: id }, 'ignoring an unreadable registered server in Redis');
        continue;
      }
      apply({ kind: 'put', id, rev: entry.rev, server: entry.server });
    }
    for (const id of [...dynamic.keys()]) {
      // Absent from the hash and not written after it was read: deleted meanwhile.
      if (!(id in all) && (revisions.get(id) ?? 0) <= revision) {
        revisions.set(id, revision);
        dynamic.delete(id);
        emit({ kind: 'deregistered', id });
      }
    }
  }

  function onMessage(from: string, message: string): void {
    if (from !== channel) return;
    const change = parseJson(message) as Partial<Change> | undefined;
    if (
      !change ||
      typeof change.id !== 'string' ||
      typeof change.rev !== 'number' ||
      (change.kind !== 'put' && change.kind !== 'delete')
    ) {
      logger?.warn({ channel }, 'ignoring an unreadable registry message');
      return;
    }
    apply(change as Change);
  }

  function unavailable(error: unknown): GatewayError {
    return new GatewayError('UNAVAILABLE', 'The registry store (Redis) is unreachable', {
      cause: error,
    });
  }

  return {
    async start() {
      if (!redis || subscriber) return;
      const timeoutMs = options.connectTimeoutMs ?? 5_000;
      const sub = redis.duplicate();
      subscriber = sub;
      sub.on('error', (error: Error) =>
        logger?.warn({ errorName: error.name }, 'registry subscriber error'),
      );
      sub.on('message', onMessage);
      try {
        await Promise.all([redisReady(redis, timeoutMs), redisReady(sub, timeoutMs)]);
        // Subscribe before reading, so no change falls between the read and the subscription.
        await sub.subscribe(channel);
        await reload();
      } catch (error) {
        sub.disconnect();
        subscriber = undefined;
        throw unavailable(error);
      }
      // A reconnected subscriber may have missed messages: read the hash again.
      sub.on('ready', () => {
        if (closed) return;
        reload().catch((error: unknown) =>
          logger?.warn({ err: error }, 'registry reload after reconnect failed'),
        );
      });
    },

    list() {
      const registered = [...dynamic.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
      return [...statics.values(), ...registered];
    },

    get: (id) => statics.get(id) ?? dynamic.get(id),

    isStatic: (id) => statics.has(id),

    async register(input) {
      const parsed = serverSchema.safeParse(input);
      if (!parsed.success) {
        const issues: InvalidField[] = parsed.error.issues.map((issue) => ({
          path: issue.path.map(String).join('.'),
          message: issue.message,
        }));
        const summary = issues
          .map((issue) => `${issue.path === '' ? '(server)' : issue.path}: ${issue.message}`)
          .join('; ');
        throw new GatewayError('INVALID_INPUT', `Invalid server: ${summary}`, {
          details: { issues },
        });
      }
      const server = parsed.data;
      if (statics.has(server.id)) {
        throw new GatewayError(
          'CONFLICT',
          `Server "${server.id}" comes from the config file and cannot be changed at run time`,
        );
      }
      if (!redis) {
        apply({ kind: 'put', id: server.id, rev: highestRevision + 1, server });
        return server;
      }
      const json = JSON.stringify(server);
      let rev: number;
      try {
        rev = Number(
          await redis.eval(
            PUT_SCRIPT,
            1,
            hashKey,
            server.id,
            json,
            channel,
            JSON.stringify(server.id),
          ),
        );
      } catch (error) {
        throw unavailable(error);
      }
      apply({ kind: 'put', id: server.id, rev, server });
      return server;
    },

    async deregister(id) {
      if (statics.has(id)) {
        throw new GatewayError(
          'CONFLICT',
          `Server "${id}" comes from the config file and cannot be removed at run time`,
        );
      }
      if (!redis) {
        if (!dynamic.has(id)) return false;
        apply({ kind: 'delete', id, rev: highestRevision + 1 });
        return true;
      }
      let rev: number;
      try {
        rev = Number(await redis.eval(DELETE_SCRIPT, 1, hashKey, id, channel, JSON.stringify(id)));
      } catch (error) {
        throw unavailable(error);
      }
      if (rev === 0) return false;
      apply({ kind: 'delete', id, rev });
      return true;
    },

    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async close() {
      closed = true;
      listeners.clear();
      const sub = subscriber;
      subscriber = undefined;
      if (!sub) return;
      try {
        if (sub.status === 'ready') await sub.quit();
        else sub.disconnect();
      } catch {
        sub.disconnect();
      }
    },
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
