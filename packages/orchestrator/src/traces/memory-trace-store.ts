/**
 * In-memory trace store: the embedded default (one process, DESIGN.md section 7). Expiry is
 * checked lazily against the injected clock, so there are no timers to clean up.
 */
import type { TraceStore, TraceSummary, TurnTrace } from './trace.js';
import {
  DEFAULT_TRACES_PER_SESSION,
  DEFAULT_TRACE_TTL_MS,
  clampLimit,
  isTraceId,
} from './trace-store-limits.js';
import { summarize } from './trace-summary.js';

export interface MemoryTraceStoreOptions {
  /** Default 7 days. */
  readonly ttlMs?: number;
  /** Default 200. */
  readonly maxPerSession?: number;
  readonly now?: () => number;
}

/** A {@link TraceStore} held in this process. */
export function createMemoryTraceStore(options: MemoryTraceStoreOptions = {}): TraceStore {
  const ttlMs = options.ttlMs ?? DEFAULT_TRACE_TTL_MS;
  const cap = options.maxPerSession ?? DEFAULT_TRACES_PER_SESSION;
  const now = options.now ?? Date.now;
  const traces = new Map<string, { json: string; expiresAt: number }>();
  const sessions = new Map<string, { entries: Map<string, TraceSummary>; expiresAt: number }>();

  const live = <T extends { expiresAt: number }>(
    map: Map<string, T>,
    key: string,
  ): T | undefined => {
    const entry = map.get(key);
    if (entry && entry.expiresAt <= now()) {
      map.delete(key);
      return undefined;
    }
    return entry;
  };

  const newestFirst = (a: TraceSummary, b: TraceSummary) =>
    b.startMs - a.startMs || (a.traceId < b.traceId ? 1 : a.traceId > b.traceId ? -1 : 0);

  return {
    async save(trace: TurnTrace) {
      const expiresAt = now() + ttlMs;
      // Stored as JSON, like Redis, so callers never share mutable objects with the store.
      traces.set(trace.traceId, { json: JSON.stringify(trace), expiresAt });
      const index = live(sessions, trace.sessionId) ?? { entries: new Map(), expiresAt };
      index.expiresAt = expiresAt;
      index.entries.set(trace.traceId, summarize(trace));
      if (index.entries.size > cap) {
        const sorted = [...index.entries.values()].sort(newestFirst);
        for (const old of sorted.slice(cap)) index.entries.delete(old.traceId);
      }
      sessions.set(trace.sessionId, index);
    },

    async get(traceId) {
      if (!isTraceId(traceId)) return undefined;
      const entry = live(traces, traceId);
      return entry ? (JSON.parse(entry.json) as TurnTrace) : undefined;
    },

    async listBySession(sessionId, limit) {
      const index = live(sessions, sessionId);
      if (!index) return [];
      // Same rule as Redis: a trace that started more than a TTL ago has left the index.
      const cutoff = now() - ttlMs;
      return [...index.entries.values()]
        .filter((s) => s.startMs >= cutoff)
        .sort(newestFirst)
        .slice(0, clampLimit(limit, cap))
        .map((s) => ({ ...s }));
    },

    async close() {
      traces.clear();
      sessions.clear();
    },
  };
}
