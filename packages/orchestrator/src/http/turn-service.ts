/**
 * Starts turns in the background (so a client disconnect never stops one, S33), stops them
 * (locally at once, across replicas through the session store), replays and follows a turn's
 * stream from any replica (S32, S34), and continues turns paused for approval.
 */
import type { Principal } from '../auth/principal.js';
import type { AgentConfig } from '../config/agent-config.js';
import type { SessionRecord, StoredMessage } from '../sessions/session-store.js';
import type { UiMessageChunk } from '../stream/ui-message-chunks.js';
import type { TurnEnvironment } from '../turn/turn-deps.js';
import { reapInterruptedTurn } from '../turn/reap-turn.js';
import { runTurn, type PendingTurn, type TurnResult } from '../turn/turn-runner.js';
import { HttpError } from './http-error.js';
import { createMemoryStopRequests, type StopRequests } from '../turn/stop-requests.js';

interface RunningTurn {
  readonly sessionId: string;
  readonly turnId: string;
  readonly controller: AbortController;
  readonly done: Promise<TurnResult>;
}

export interface StartTurnInput {
  readonly session: SessionRecord;
  readonly agent: AgentConfig;
  readonly principal: Principal;
  readonly userMessage?: StoredMessage;
  readonly regenerate?: boolean;
  readonly continues?: PendingTurn;
  readonly traceparent?: string;
  onChunk?(chunk: UiMessageChunk, id: string): void;
}

export interface StartedTurn {
  readonly turnId: string;
  readonly done: Promise<TurnResult>;
}

export interface FollowOptions {
  /** The turn to follow, from {@link TurnService.resumable}; looked up when absent. */
  readonly turnId?: string;
  readonly after?: string;
  readonly signal: AbortSignal;
  /** How long one blocking read waits (and how soon a dead turn is noticed). Default 2 s. */
  readonly blockMs?: number;
  /** Writes one frame; a returned promise holds the follow until it settles (backpressure). */
  write(id: string, json: string): unknown;
}

export interface TurnService {
  /** Takes the session's turn lock (409 CONFLICT with Retry-After when taken) and runs the turn. */
  start(input: StartTurnInput): Promise<StartedTurn>;
  /** Stops the session's active turn; false when none is running. */
  stop(sessionId: string): Promise<boolean>;
  /**
   * The turn a resume replays: the running one, or one a dead process left unfinished (closed
   * as interrupted now); undefined when there is none (204).
   */
  resumable(sessionId: string): Promise<string | undefined>;
  /** Replays the active turn's stream (after `after`) and follows it to its end; false when none. */
  follow(sessionId: string, options: FollowOptions): Promise<boolean>;
  /** Running turns of this process. */
  readonly running: number;
  /** Waits up to `graceMs` for running turns, then stops the rest (marked interrupted). */
  drain(graceMs: number): Promise<void>;
}

export interface TurnServiceOptions {
  /** Where stop requests meet the replica running the turn. Default: in this process only. */
  stops?: StopRequests;
  /** Called with each turn's final status (metrics). */
  onTurnEnded?(status: TurnResult['status']): void;
}

export function createTurnService(
  env: TurnEnvironment,
  options: TurnServiceOptions = {},
): TurnService {
  const running = new Map<string, RunningTurn>();
  const stops = options.stops ?? createMemoryStopRequests();
  const lockTtlMs = env.lockTtlMs ?? 30_000;

  const resumable = async (sessionId: string): Promise<string | undefined> => {
    const active = await env.sessions.activeTurn(sessionId);
    if (active !== undefined && !active.startsWith('reap-')) return active;
    // No running turn: only a turn left unfinished by a dead process is worth replaying
    // (it is closed as interrupted first, S34).
    const latest = await env.streams.latestTurn(sessionId);
    if (latest === undefined) return undefined;
    return (await reapInterruptedTurn(env, sessionId, latest)) ? latest : undefined;
  };

  return {
    async start(input) {
      const turnId = env.newId();
      const lock = await env.sessions.acquireTurn(input.session.id, turnId, lockTtlMs);
      if (!lock.ok) {
        throw new HttpError(409, 'CONFLICT', 'A turn is already running in this session.', {
          retryable: true,
          retryAfterMs: lock.retryAfterMs,
          details: { activeTurnId: lock.activeTurnId },
        });
      }
      const controller = new AbortController();
      const unwatch = stops.watch(input.session.id, turnId, () => controller.abort('stop'));
      const done = runTurn(env, {
        session: input.session,
        agent: input.agent,
        principal: input.principal,
        turnId,
        ...(input.userMessage === undefined ? {} : { userMessage: input.userMessage }),
        ...(input.regenerate === undefined ? {} : { regenerate: input.regenerate }),
        ...(input.continues === undefined ? {} : { continues: input.continues }),
        ...(input.traceparent === undefined ? {} : { traceparent: input.traceparent }),
        signal: controller.signal,
        ...(input.onChunk === undefined ? {} : { onChunk: input.onChunk }),
      })
        .then((result) => {
          options.onTurnEnded?.(result.status);
          return result;
        })
        .finally(() => {
          unwatch();
          running.delete(input.session.id);
        });
      running.set(input.session.id, { sessionId: input.session.id, turnId, controller, done });
      return { turnId, done };
    },

    async stop(sessionId) {
      const local = running.get(sessionId);
      if (local !== undefined) {
        local.controller.abort('stop');
        await local.done;
        return true;
      }
      const turnId = await env.sessions.activeTurn(sessionId);
      if (turnId === undefined) return false;
      await stops.request(sessionId, turnId);
      return true;
    },

    resumable,

    async follow(sessionId, options) {
      const turnId = options.turnId ?? (await resumable(sessionId));
      if (turnId === undefined) return false;
      let cursor = options.after;
      while (!options.signal.aborted) {
        const read = await env.streams.read(sessionId, turnId, {
          ...(cursor === undefined ? {} : { after: cursor }),
          blockMs: options.blockMs ?? 2_000,
          count: 500,
          signal: options.signal,
        });
        for (const entry of read.entries) {
          if (options.signal.aborted) break;
          await options.write(entry.id, entry.data);
          cursor = entry.id;
        }
        if (options.signal.aborted) break;
        if (read.ended) break;
        if (read.entries.length === 0 && (await env.sessions.activeTurn(sessionId)) !== turnId) {
          // The turn's process died without ending its stream and its lock lapsed: close it
          // (or let the replica that got there first), then read the closing chunks.
          await reapInterruptedTurn(env, sessionId, turnId);
        }
      }
      return true;
    },

    get running() {
      return running.size;
    },

    async drain(graceMs) {
      const all = [...running.values()];
      if (all.length === 0) return;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), graceMs);
      });
      const finished = await Promise.race([
        Promise.allSettled(all.map((t) => t.done)).then(() => 'done' as const),
        timeout,
      ]);
      if (timer !== undefined) clearTimeout(timer);
      if (finished === 'timeout') {
        for (const t of running.values()) t.controller.abort('shutdown');
        await Promise.allSettled([...running.values()].map((t) => t.done));
      }
    },
  };
}
