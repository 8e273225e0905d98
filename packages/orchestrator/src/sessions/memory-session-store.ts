/**
 * In-memory session store: the embedded default (one process, DESIGN.md section 7). Expiry is
 * checked lazily against the injected clock, so there are no timers to clean up. Messages and
 * pending state are kept as JSON text, so callers get copies, as from Redis.
 */
import type {
  AcquireTurnResult,
  SessionOwner,
  SessionRecord,
  SessionStore,
  StoredMessage,
} from './session-store.js';
import { DEFAULT_SESSION_IDLE_TTL_MS } from './session-keys.js';
import { SessionStoreError } from './session-store-error.js';

/** What a memory session store needs from the turn streams to delete a session's streams. */
export interface SessionStreamsDeleter {
  deleteSession(sessionId: string): void;
}

export interface MemorySessionStoreOptions {
  /** Epoch ms. */
  readonly now?: () => number;
  /** Default 30 days. */
  readonly idleTtlMs?: number;
  /** The turn streams to delete with a session (e.g. a memory turn-stream store). */
  readonly turnStreams?: SessionStreamsDeleter;
}

interface SessionEntry {
  record: SessionRecord;
  messages: string[];
  ids: Set<string>;
  pending?: string;
  expiresAt: number;
}

const ownerKey = (owner: SessionOwner) => JSON.stringify([owner.tenant, owner.user]);

/**
 * A {@link SessionStore} held in this process.
 *
 * @example
 * ```ts
 * const streams = createMemoryTurnStreamStore();
 * const sessions = createMemorySessionStore({ turnStreams: streams });
 * await sessions.create({ id: 's1', agent: 'support', owner: { user: 'u', tenant: 't' } });
 * ```
 */
export function createMemorySessionStore(options: MemorySessionStoreOptions = {}): SessionStore {
  const now = options.now ?? Date.now;
  const idleTtlMs = options.idleTtlMs ?? DEFAULT_SESSION_IDLE_TTL_MS;
  const sessions = new Map<string, SessionEntry>();
  const byOwner = new Map<string, Set<string>>();
  const locks = new Map<string, { turnId: string; expiresAt: number }>();

  const drop = (id: string) => {
    const entry = sessions.get(id);
    if (!entry) return false;
    sessions.delete(id);
    locks.delete(id);
    const ids = byOwner.get(ownerKey(entry.record.owner));
    ids?.delete(id);
    if (ids?.size === 0) byOwner.delete(ownerKey(entry.record.owner));
    options.turnStreams?.deleteSession(id);
    return true;
  };

  const live = (id: string): SessionEntry | undefined => {
    const entry = sessions.get(id);
    if (entry && entry.expiresAt <= now()) {
      drop(id);
      return undefined;
    }
    return entry;
  };

  const mustLive = (id: string): SessionEntry => {
    const entry = live(id);
    if (!entry) throw new SessionStoreError('NOT_FOUND', 'session not found');
    return entry;
  };

  const touch = (entry: SessionEntry) => {
    entry.expiresAt = now() + idleTtlMs;
  };

  const liveLock = (id: string) => {
    const lock = locks.get(id);
    if (lock && lock.expiresAt <= now()) {
      locks.delete(id);
      return undefined;
    }
    return lock;
  };

  return {
    async create(input) {
      if (live(input.id)) throw new SessionStoreError('CONFLICT', 'session id already exists');
      const at = now();
      const record: SessionRecord = {
        id: input.id,
        agent: input.agent,
        owner: { user: input.owner.user, tenant: input.owner.tenant },
        input: { ...(input.input ?? {}) },
        createdAt: at,
        updatedAt: at,
        messageCount: 0,
      };
      sessions.set(input.id, { record, messages: [], ids: new Set(), expiresAt: at + idleTtlMs });
      const key = ownerKey(record.owner);
      const set = byOwner.get(key) ?? new Set<string>();
      set.add(input.id);
      byOwner.set(key, set);
      return record;
    },

    async get(id) {
      const entry = live(id);
      if (!entry) return undefined;
      touch(entry);
      return entry.record;
    },

    async list(owner, listOptions) {
      const limit = listOptions?.limit ?? 100;
      if (limit <= 0) return [];
      const ids = [...(byOwner.get(ownerKey(owner)) ?? [])];
      return ids
        .map((id) => live(id)?.record)
        .filter((r): r is SessionRecord => r !== undefined)
        .sort((a, b) => b.updatedAt - a.updatedAt || (a.id < b.id ? 1 : -1))
        .slice(0, limit);
    },

    async delete(id) {
      const existed = live(id) !== undefined;
      if (existed) drop(id);
      options.turnStreams?.deleteSession(id);
      locks.delete(id);
      return existed;
    },

    async appendMessage(sessionId, message) {
      const entry = mustLive(sessionId);
      if (entry.ids.has(message.id)) return false;
      entry.ids.add(message.id);
      entry.messages.push(JSON.stringify(message));
      entry.record = {
        ...entry.record,
        messageCount: entry.record.messageCount + 1,
        updatedAt: now(),
      };
      touch(entry);
      return true;
    },

    async removeLastMessage(sessionId, messageId) {
      const entry = live(sessionId);
      const last = entry?.messages.at(-1);
      if (!entry || last === undefined) return false;
      if ((JSON.parse(last) as StoredMessage).id !== messageId) return false;
      entry.messages.pop();
      entry.ids.delete(messageId);
      entry.record = {
        ...entry.record,
        messageCount: entry.record.messageCount - 1,
        updatedAt: now(),
      };
      touch(entry);
      return true;
    },

    async readMessages(sessionId, limit) {
      const entry = live(sessionId);
      if (!entry) return [];
      if (limit !== undefined && limit <= 0) return [];
      const window = limit === undefined ? entry.messages : entry.messages.slice(-limit);
      return window.map((json) => JSON.parse(json) as StoredMessage);
    },

    async acquireTurn(sessionId, turnId, ttlMs): Promise<AcquireTurnResult> {
      const lock = liveLock(sessionId);
      if (lock) {
        return {
          ok: false,
          activeTurnId: lock.turnId,
          retryAfterMs: Math.max(1_000, lock.expiresAt - now()),
        };
      }
      locks.set(sessionId, { turnId, expiresAt: now() + ttlMs });
      return { ok: true };
    },

    async renewTurn(sessionId, turnId, ttlMs) {
      const lock = liveLock(sessionId);
      if (!lock || lock.turnId !== turnId) return false;
      lock.expiresAt = now() + ttlMs;
      return true;
    },

    async releaseTurn(sessionId, turnId) {
      if (liveLock(sessionId)?.turnId === turnId) locks.delete(sessionId);
    },

    async activeTurn(sessionId) {
      return liveLock(sessionId)?.turnId;
    },

    async savePending(sessionId, state) {
      const entry = mustLive(sessionId);
      entry.pending = JSON.stringify(state);
      touch(entry);
    },

    async takePending(sessionId) {
      const entry = live(sessionId);
      const pending = entry?.pending;
      if (!entry || pending === undefined) return undefined;
      delete entry.pending;
      return JSON.parse(pending) as unknown;
    },

    async peekPending(sessionId) {
      const pending = live(sessionId)?.pending;
      return pending === undefined ? undefined : (JSON.parse(pending) as unknown);
    },

    async close() {},
  };
}
