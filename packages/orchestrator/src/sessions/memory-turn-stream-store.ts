/**
 * In-memory turn streams: the embedded default (one process). Entry ids are `<ms>-<seq>`,
 * monotonic per stream like Redis Stream ids; followers wait on an event emitter. Expiry is
 * checked lazily against the injected clock.
 */
import { EventEmitter } from 'node:events';
import type {
  ReadTurnStreamOptions,
  TurnStreamEntry,
  TurnStreamRead,
  TurnStreamStore,
} from './session-store.js';
import { DEFAULT_TURN_STREAM_MAX_LEN, DEFAULT_TURN_STREAM_TTL_MS } from './session-keys.js';
import { compareEntryIds } from './stream-entry-id.js';

export interface MemoryTurnStreamStoreOptions {
  /** Epoch ms: entry ids and expiry. */
  readonly now?: () => number;
  /** Default 24 hours after the last append. */
  readonly ttlMs?: number;
  /** Entries kept per turn (oldest dropped first). Default 10,000. */
  readonly maxLen?: number;
}

/** A memory turn-stream store, which a memory session store can delete streams from. */
export interface MemoryTurnStreamStore extends TurnStreamStore {
  /** Drops every stream of the session (called when the session is deleted). */
  deleteSession(sessionId: string): void;
}

interface StoredEntry extends TurnStreamEntry {
  readonly end: boolean;
}

interface TurnStream {
  entries: StoredEntry[];
  lastMs: number;
  lastSeq: number;
  expiresAt: number;
}

const DEFAULT_COUNT = 1_000;

/**
 * A {@link TurnStreamStore} held in this process.
 *
 * @example
 * ```ts
 * const streams = createMemoryTurnStreamStore();
 * const id = await streams.append('s1', 't1', JSON.stringify({ type: 'start' }));
 * const { entries } = await streams.read('s1', 't1', { after: id, blockMs: 15_000 });
 * ```
 */
export function createMemoryTurnStreamStore(
  options: MemoryTurnStreamStoreOptions = {},
): MemoryTurnStreamStore {
  const now = options.now ?? Date.now;
  const ttlMs = options.ttlMs ?? DEFAULT_TURN_STREAM_TTL_MS;
  const maxLen = Math.max(1, options.maxLen ?? DEFAULT_TURN_STREAM_MAX_LEN);
  const sessions = new Map<string, { turns: Map<string, TurnStream>; lastTurn?: string }>();
  const events = new EventEmitter();
  events.setMaxListeners(0);
  // Wakes every waiting reader on close().
  const closing = new AbortController();
  const eventName = (sessionId: string, turnId: string) => JSON.stringify([sessionId, turnId]);

  const liveStream = (sessionId: string, turnId: string): TurnStream | undefined => {
    const session = sessions.get(sessionId);
    const stream = session?.turns.get(turnId);
    if (session && stream && stream.expiresAt <= now()) {
      session.turns.delete(turnId);
      if (session.turns.size === 0) sessions.delete(sessionId);
      return undefined;
    }
    return stream;
  };

  const add = (sessionId: string, turnId: string, data: string, end: boolean): string => {
    const session = sessions.get(sessionId) ?? { turns: new Map<string, TurnStream>() };
    sessions.set(sessionId, session);
    const stream = liveStream(sessionId, turnId) ?? {
      entries: [],
      lastMs: 0,
      lastSeq: -1,
      expiresAt: 0,
    };
    if (!sessions.has(sessionId)) sessions.set(sessionId, session);
    session.turns.set(turnId, stream);
    session.lastTurn = turnId;
    const at = now();
    if (at > stream.lastMs) {
      stream.lastMs = at;
      stream.lastSeq = 0;
    } else {
      stream.lastSeq += 1;
    }
    const id = `${stream.lastMs}-${stream.lastSeq}`;
    stream.entries.push({ id, data, end });
    if (stream.entries.length > maxLen) stream.entries.splice(0, stream.entries.length - maxLen);
    stream.expiresAt = at + ttlMs;
    events.emit(eventName(sessionId, turnId));
    return id;
  };

  const readNow = (
    sessionId: string,
    turnId: string,
    after: string | undefined,
    count: number,
  ): TurnStreamRead => {
    const entries = liveStream(sessionId, turnId)?.entries ?? [];
    // Binary search for the first entry after `after`.
    let lo = 0;
    if (after !== undefined) {
      let hi = entries.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareEntryIds(entries[mid]!.id, after) <= 0) lo = mid + 1;
        else hi = mid;
      }
    }
    const out: TurnStreamEntry[] = [];
    for (let i = lo; i < entries.length && out.length < count; i++) {
      const entry = entries[i]!;
      if (entry.end) return { entries: out, ended: true };
      out.push({ id: entry.id, data: entry.data });
    }
    return { entries: out, ended: false };
  };

  const waitForAppend = (
    sessionId: string,
    turnId: string,
    blockMs: number,
    signal: AbortSignal | undefined,
  ) =>
    new Promise<void>((resolve) => {
      const name = eventName(sessionId, turnId);
      const done = () => {
        clearTimeout(timer);
        events.off(name, done);
        signal?.removeEventListener('abort', done);
        closing.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, blockMs);
      events.on(name, done);
      signal?.addEventListener('abort', done, { once: true });
      closing.signal.addEventListener('abort', done, { once: true });
    });

  return {
    async append(sessionId, turnId, data) {
      return add(sessionId, turnId, data, false);
    },

    async appendMany(sessionId, turnId, data) {
      return data.map((d) => add(sessionId, turnId, d, false));
    },

    async end(sessionId, turnId) {
      add(sessionId, turnId, '', true);
    },

    async read(sessionId, turnId, readOptions: ReadTurnStreamOptions = {}) {
      const count = Math.max(1, readOptions.count ?? DEFAULT_COUNT);
      const { signal } = readOptions;
      const first = readNow(sessionId, turnId, readOptions.after, count);
      const blockMs = readOptions.blockMs ?? 0;
      if (
        first.entries.length > 0 ||
        first.ended ||
        blockMs <= 0 ||
        signal?.aborted ||
        closing.signal.aborted
      ) {
        return first;
      }
      await waitForAppend(sessionId, turnId, blockMs, signal);
      if (signal?.aborted) return { entries: [], ended: false };
      return readNow(sessionId, turnId, readOptions.after, count);
    },

    async ended(sessionId, turnId) {
      return liveStream(sessionId, turnId)?.entries.at(-1)?.end === true;
    },

    async latestTurn(sessionId) {
      const lastTurn = sessions.get(sessionId)?.lastTurn;
      return lastTurn !== undefined && liveStream(sessionId, lastTurn) ? lastTurn : undefined;
    },

    deleteSession(sessionId) {
      sessions.delete(sessionId);
    },

    async close() {
      closing.abort();
    },
  };
}
