/**
 * Redis key layout of a session (DESIGN.md section 7). Every key of one session shares the hash
 * tag `{<sessionId>}`, so each script touches one Redis Cluster slot; the per-owner index shares
 * the tenant's tag `{t:<tenant>}`.
 */
import type { SessionOwner } from './session-store.js';

/** Default idle TTL of a session: 30 days. */
export const DEFAULT_SESSION_IDLE_TTL_MS = 30 * 24 * 60 * 60 * 1_000;
/** Default TTL of one turn's stream: 24 hours. */
export const DEFAULT_TURN_STREAM_TTL_MS = 24 * 60 * 60 * 1_000;
/** Default cap of one turn's stream (entries). */
export const DEFAULT_TURN_STREAM_MAX_LEN = 10_000;

export interface SessionKeys {
  readonly meta: string;
  readonly msgs: string;
  readonly ids: string;
  readonly turn: string;
  readonly pending: string;
  /** The id of the session's most recent turn that has a stream. */
  readonly lastTurn: string;
  /** Set of turn ids that have a stream (so deleting the session finds them). */
  readonly turns: string;
  stream(turnId: string): string;
}

/** The keys of session `sessionId` under `prefix` (default `keel`). */
export function sessionKeys(prefix: string, sessionId: string): SessionKeys {
  const base = `${prefix}:s:{${sessionId}}`;
  return {
    meta: `${base}:meta`,
    msgs: `${base}:msgs`,
    ids: `${base}:ids`,
    turn: `${base}:turn`,
    pending: `${base}:pending`,
    lastTurn: `${base}:lastturn`,
    turns: `${base}:turns`,
    stream: (turnId) => `${base}:t:${turnId}`,
  };
}

/**
 * The owner's session index (sorted set by updatedAt). User and tenant are URI-encoded so a `:`
 * or `}` in them cannot collide with another owner's key or break the hash tag.
 */
export function ownerIndexKey(prefix: string, owner: SessionOwner): string {
  return `${prefix}:u:{t:${encodeURIComponent(owner.tenant)}}:${encodeURIComponent(owner.user)}:sessions`;
}
