/**
 * The session store contract (DESIGN.md section 7). Two implementations pass one contract
 * suite: in memory (embedded default, one process) and Redis (keys `keel:s:{<id>}:...`).
 */
import type { UiMessagePart } from '../stream/assemble-ui-message.js';

/** Who owns a session: the authenticated user within a tenant. */
export interface SessionOwner {
  readonly user: string;
  readonly tenant: string;
}

export interface SessionRecord {
  readonly id: string;
  readonly agent: string;
  readonly owner: SessionOwner;
  /** Values for the agent prompt's `{{VARIABLES}}`. */
  readonly input: Readonly<Record<string, string>>;
  /** Epoch ms. */
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly messageCount: number;
}

/** A stored message: the AI SDK UIMessage shape. */
export interface StoredMessage {
  readonly id: string;
  readonly role: 'system' | 'user' | 'assistant';
  readonly parts: readonly UiMessagePart[];
  readonly metadata?: unknown;
}

export interface CreateSessionInput {
  readonly id: string;
  readonly agent: string;
  readonly owner: SessionOwner;
  readonly input?: Readonly<Record<string, string>>;
}

export interface ListSessionsOptions {
  readonly limit?: number;
}

/** The turn lock: one active turn per session, held with a TTL the running turn renews. */
export type AcquireTurnResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly activeTurnId: string; readonly retryAfterMs: number };

export interface SessionStore {
  create(input: CreateSessionInput): Promise<SessionRecord>;
  /** Also refreshes the idle TTL. Undefined when missing or expired. */
  get(id: string): Promise<SessionRecord | undefined>;
  /** Newest first. */
  list(owner: SessionOwner, options?: ListSessionsOptions): Promise<SessionRecord[]>;
  /** Deletes the session and everything under it (messages, turn lock, streams, pending approvals). */
  delete(id: string): Promise<boolean>;

  /** O(1), idempotent on `message.id`: `false` when that id is already stored. */
  appendMessage(sessionId: string, message: StoredMessage): Promise<boolean>;
  /**
   * Removes the newest message if its id is `messageId` (for `regenerate-message`). The log is
   * otherwise append-only. Returns whether it removed it.
   */
  removeLastMessage(sessionId: string, messageId: string): Promise<boolean>;
  /** The newest `limit` messages (all when absent), oldest first. O(limit). */
  readMessages(sessionId: string, limit?: number): Promise<StoredMessage[]>;

  /** Take the turn lock with `turnId` as holder. */
  acquireTurn(sessionId: string, turnId: string, ttlMs: number): Promise<AcquireTurnResult>;
  /** Extend the lock; false when `turnId` no longer holds it. */
  renewTurn(sessionId: string, turnId: string, ttlMs: number): Promise<boolean>;
  /** Release if `turnId` holds it. */
  releaseTurn(sessionId: string, turnId: string): Promise<void>;
  /** The running turn's id, if any. */
  activeTurn(sessionId: string): Promise<string | undefined>;

  /** A turn paused for approvals: opaque JSON state, kept until taken or the session expires. */
  savePending(sessionId: string, state: unknown): Promise<void>;
  /** Atomically reads and deletes the paused state (so only one approval continues it). */
  takePending(sessionId: string): Promise<unknown>;
  peekPending(sessionId: string): Promise<unknown>;

  close(): Promise<void>;
}

/** One chunk of a turn's stream as stored: its entry id (the SSE `id:`) and the chunk JSON. */
export interface TurnStreamEntry {
  readonly id: string;
  readonly data: string;
}

export interface ReadTurnStreamOptions {
  /** Entries strictly after this id; from the start when absent. */
  readonly after?: string;
  /** Wait up to this long for new entries when none are there (0 = do not wait). */
  readonly blockMs?: number;
  readonly count?: number;
  readonly signal?: AbortSignal;
}

export interface TurnStreamRead {
  readonly entries: TurnStreamEntry[];
  /** The turn has ended (its end marker was read); nothing more will come. */
  readonly ended: boolean;
}

/**
 * Each turn's chunks (Redis Stream `keel:s:{<sessionId>}:t:<turnId>`, capped, with TTL), so any
 * replica can replay a turn from its start or after `Last-Event-ID` and follow it (S32, S34).
 */
export interface TurnStreamStore {
  /** Appends one chunk (JSON text); returns its entry id. */
  append(sessionId: string, turnId: string, data: string): Promise<string>;
  /** Appends several chunks in order in one round trip; returns their entry ids. */
  appendMany(sessionId: string, turnId: string, data: readonly string[]): Promise<string[]>;
  /** Marks the turn's stream ended (readers then stop). */
  end(sessionId: string, turnId: string): Promise<void>;
  read(sessionId: string, turnId: string, options?: ReadTurnStreamOptions): Promise<TurnStreamRead>;
  /** Whether the turn's stream has its end marker (one read of the newest entry). */
  ended(sessionId: string, turnId: string): Promise<boolean>;
  /** The most recent turn of the session that has a stream, ended or not. */
  latestTurn(sessionId: string): Promise<string | undefined>;
  close(): Promise<void>;
}
