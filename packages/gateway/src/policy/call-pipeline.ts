/**
 * One logical `tools/call` through the gateway's policies: deadline, per-attempt timeout,
 * per-replica circuit breaker and bulkhead, retry with full-jitter backoff, and fallback to
 * other logical servers (DESIGN.md section 4).
 *
 * The retry/fallback decisions are a plain loop here, because they read fields cockatiel's
 * retry policy does not know about (`delivery`, the call's idempotency, the deadline, which
 * replicas were tried). Each attempt runs inside cockatiel policies:
 * `bulkhead → circuit breaker → timeout (aggressive) → attempt`.
 */
import { TimeoutStrategy, isBrokenCircuitError, isBulkheadRejectedError, timeout } from 'cockatiel';
import type { Policies } from '../config/gateway-config.js';
import { GatewayError } from '../errors/gateway-error.js';
import type { Delivery } from '../errors/gateway-error.js';
import { createReplicaGuard, guardConfigKey } from './replica-guard.js';
import type { BreakerState, ReplicaGuard } from './replica-guard.js';
import { retryDelayMs } from './retry-backoff.js';

export type { BreakerState } from './replica-guard.js';

/** One logical server a call may go to: the primary, or a fallback. */
export interface CallTarget {
  serverId: string;
  /** Replica URLs of the server. */
  replicas: readonly string[];
  /** The server's policies, already merged with the tool's overrides. */
  policies: Policies;
  /** The tool is safe to run twice (idempotent or read-only). */
  idempotent: boolean;
  isHealthy(replica: string): boolean;
}

/** What one attempt is told. */
export interface AttemptInfo {
  serverId: string;
  replica: string;
  /** 1-based over the whole logical call, fallbacks included. */
  attempt: number;
  /** This attempt is the half-open probe of the replica's breaker (its timeout is `probeTimeoutMs`). */
  probe: boolean;
  /** Aborts when the attempt times out, the deadline passes, or the caller aborts. */
  signal: AbortSignal;
  /** The attempt goes to a fallback server, not the primary. */
  fallback: boolean;
}

/**
 * Why a failed try was or was not followed by another:
 * `retry` — another try on this server follows;
 * `not-retryable` — the error is final (never retried, never falls back);
 * `unsafe-to-retry` — the request may have run and the call is not safe to repeat (INDETERMINATE);
 * `attempts-exhausted` — `maxAttempts` tries were made on this server;
 * `deadline` — the next try would not start before the deadline;
 * `no-replica` — the server has no healthy replica;
 * `cancelled` — the caller aborted.
 */
export type FailureDecision =
  | 'retry'
  | 'not-retryable'
  | 'unsafe-to-retry'
  | 'attempts-exhausted'
  | 'deadline'
  | 'no-replica'
  | 'cancelled';

/** Typed events of a call; the pipeline itself never logs. */
export type PipelineEvent =
  | {
      type: 'attempt-start';
      serverId: string;
      replica: string;
      attempt: number;
      probe: boolean;
      fallback: boolean;
    }
  | {
      type: 'attempt-failed';
      serverId: string;
      /** Undefined when no replica could be chosen. */
      replica: string | undefined;
      /** Undefined when the try was refused before `attempt()` was called (breaker, bulkhead). */
      attempt: number | undefined;
      fallback: boolean;
      error: GatewayError;
      willRetry: boolean;
      reason: FailureDecision;
    }
  | {
      type: 'retry-scheduled';
      serverId: string;
      delayMs: number;
      /** Error code of the failure that is retried. */
      reason: string;
    }
  | {
      type: 'fallback';
      from: string;
      to: string;
      /** Error code that ended `from`. */ reason: string;
    }
  | { type: 'breaker-state'; serverId: string; replica: string; state: BreakerState }
  | { type: 'bulkhead-rejected'; serverId: string; replica: string };

/** Options of {@link CallPipeline.run}. */
export interface RunCallOptions<T> {
  /** `[primary, ...fallbacks]`. */
  targets: readonly CallTarget[];
  /** The call carries an idempotency key (`idk`): a request that may have run can be resent. */
  hasIdempotencyKey: boolean;
  /** The caller's abort: the call ends with `CANCELLED`, never retried. */
  signal: AbortSignal;
  /**
   * Run one attempt. Throws a {@link GatewayError} (with `delivery`) on failure; whatever it
   * resolves is success, a tool result with `isError` included.
   */
  attempt: (info: AttemptInfo) => Promise<T>;
  onEvent?: (event: PipelineEvent) => void;
}

/** What a served call returns. */
export interface CallResult<T> {
  value: T;
  /** How many times `attempt()` was called. */
  attempts: number;
  served: { serverId: string; replica: string; fallback: boolean };
}

/**
 * One failed try, as kept in `details.attempts` of the error a call ends with. The replica is
 * its index in the server's `urls`, so internal addresses stay out of client-visible errors.
 */
export interface AttemptRecord {
  serverId: string;
  replicaIndex?: number;
  /** Set when `attempt()` was called. */
  attempt?: number;
  fallback: boolean;
  code: string;
  message: string;
  delivery: Delivery;
  retryable: boolean;
  retryAfterMs?: number;
}

/** Dependencies of {@link createCallPipeline}, with production defaults. */
export interface CallPipelineDeps {
  /** Must move with `Date.now` and timers: cockatiel's breaker and timeouts use those. */
  now?: () => number;
  /** In `[0, 1)`: full-jitter draws. */
  random?: () => number;
  /** Wait before a retry; rejects when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** The policy pipeline; keeps breaker and bulkhead state per replica URL. */
export interface CallPipeline {
  run<T>(options: RunCallOptions<T>): Promise<CallResult<T>>;
  /** Breaker state of a replica (`closed` for one never called). */
  breakerState(replica: string): BreakerState;
  /** Drop all per-replica state. */
  close(): void;
}

/** Abort reason of a finished attempt's signal (made once, not per call). */
const ATTEMPT_OVER = Object.freeze(new Error('The attempt is over'));

/** Failures after which another logical server may serve the call. */
const FALLBACK_CODES: ReadonlySet<string> = new Set(['UNAVAILABLE', 'TIMEOUT', 'CIRCUIT_OPEN']);

/**
 * Create the pipeline. One instance per gateway process: breakers and bulkheads are shared by
 * all calls to a replica.
 *
 * @example
 * ```ts
 * import { policiesSchema } from '../config/gateway-config.js';
 * const pipeline = createCallPipeline({});
 * const { value } = await pipeline.run({
 *   targets: [
 *     {
 *       serverId: 'orders',
 *       replicas: ['http://127.0.0.1:7101/mcp'],
 *       policies: policiesSchema.parse({}),
 *       idempotent: false,
 *       isHealthy: () => true,
 *     },
 *   ],
 *   hasIdempotencyKey: false,
 *   signal: new AbortController().signal,
 *   attempt: async ({ replica, signal }) => ({ replica, aborted: signal.aborted }),
 * });
 * ```
 */
export function createCallPipeline(deps: CallPipelineDeps = {}): CallPipeline {
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const sleep = deps.sleep ?? abortableSleep;
  const guards = new Map<string, ReplicaGuard>();
  const cursors = new Map<string, number>();

  function guardFor(target: CallTarget, replica: string): ReplicaGuard {
    const existing = guards.get(replica);
    if (existing && existing.configKey === guardConfigKey(target.policies)) return existing;
    existing?.dispose();
    const guard = createReplicaGuard(replica, target.policies, now);
    guards.set(replica, guard);
    return guard;
  }

  type Choice =
    | { kind: 'none' }
    | { kind: 'replica'; replica: string }
    | { kind: 'refused'; replica: string; retryAfterMs: number };

  /**
   * Round-robin over healthy replicas whose breaker admits a call, preferring ones not yet
   * tried in this call; when every healthy replica's breaker refuses, the one open soonest.
   */
  function chooseReplica(target: CallTarget, tried: ReadonlySet<string>): Choice {
    const healthy = target.replicas.filter((replica) => target.isHealthy(replica));
    if (healthy.length === 0) return { kind: 'none' };
    const start = cursors.get(target.serverId) ?? 0;
    cursors.set(target.serverId, (start + 1) % Number.MAX_SAFE_INTEGER);
    let reuse: string | undefined;
    let refused: { replica: string; retryAfterMs: number } | undefined;
    for (let i = 0; i < healthy.length; i++) {
      const replica = healthy[(start + i) % healthy.length]!;
      const admission = guardFor(target, replica).admission();
      if (!admission.admitted) {
        if (!refused || admission.retryAfterMs < refused.retryAfterMs) {
          refused = { replica, retryAfterMs: admission.retryAfterMs };
        }
      } else if (!tried.has(replica)) {
        return { kind: 'replica', replica };
      } else {
        reuse ??= replica;
      }
    }
    if (reuse !== undefined) return { kind: 'replica', replica: reuse };
    return { kind: 'refused', ...refused! };
  }

  async function run<T>(options: RunCallOptions<T>): Promise<CallResult<T>> {
    const emit = (event: PipelineEvent) => {
      try {
        options.onEvent?.(event);
      } catch {
        // A listener's failure must not change the outcome of the call.
      }
    };
    const records: AttemptRecord[] = [];
    const primary = options.targets[0];
    if (!primary) {
      throw new GatewayError('UNAVAILABLE', 'No tool server can serve this call', {
        retryable: false,
      });
    }
    if (options.signal.aborted) throw cancelled(records);

    const deadlineMs = primary.policies.deadlineMs;
    const deadlineAt = now() + deadlineMs;
    // Aborts on the caller's abort or at the deadline. Linked by hand: AbortSignal.any cost
    // ~15 µs a call here (P2).
    const callAbort = new AbortController();
    const callSignal = callAbort.signal;
    let deadlineHit = false;
    const deadlineTimer = setTimeout(() => {
      deadlineHit = true;
      callAbort.abort();
    }, deadlineMs);
    const onCallerAbort = () => callAbort.abort(options.signal.reason);
    options.signal.addEventListener('abort', onCallerAbort, { once: true });
    let attempts = 0;

    function report(target: CallTarget, guard: ReplicaGuard): void {
      const state = guard.state();
      if (state === guard.reported) return;
      guard.reported = state;
      emit({ type: 'breaker-state', serverId: target.serverId, replica: guard.replica, state });
    }

    /** One try on one replica: bulkhead → breaker → timeout → attempt. */
    async function tryReplica(
      target: CallTarget,
      replica: string,
      fallback: boolean,
    ): Promise<
      | { ok: true; value: T }
      | { ok: false; error: GatewayError; /** Set when `attempt()` was called. */ attempt?: number }
    > {
      const guard = guardFor(target, replica);
      let attempt: number | undefined;
      type Outcome = { ok: true; value: T } | { ok: false; error: GatewayError };
      const work = guard.bulkhead.execute(async (): Promise<Outcome> => {
        // Checked again here: the breaker may have changed while this call sat in the queue,
        // and cockatiel would make a caller wait for a running probe instead of refusing it.
        const admission = guard.admission();
        if (!admission.admitted) throw circuitOpen(target.serverId, admission.retryAfterMs);
        return guard.breaker.execute(async (): Promise<Outcome> => {
          const probe = guard.takeProbe();
          if (probe) {
            // Cockatiel records the half-open state only once this function has returned.
            guard.reported = 'half-open';
            emit({ type: 'breaker-state', serverId: target.serverId, replica, state: 'half-open' });
          }
          const limitMs = Math.max(
            0,
            Math.min(
              probe ? guard.probeTimeoutMs : target.policies.attemptTimeoutMs,
              deadlineAt - now(),
            ),
          );
          attempt = ++attempts;
          const info = { serverId: target.serverId, replica, attempt, probe, fallback };
          emit({ type: 'attempt-start', ...info });
          // The attempt's own signal follows the policy's and is aborted when the attempt is over
          // with a reason made once: cockatiel's abort-on-return built a DOMException (with a
          // stack) on every call (P2).
          const policy = timeout(limitMs, {
            strategy: TimeoutStrategy.Aggressive,
            abortOnReturn: false,
          });
          const attemptAbort = new AbortController();
          let timedOut = false;
          const onTimeout = policy.onTimeout(() => {
            timedOut = !options.signal.aborted;
          });
          try {
            const value = await policy.execute(({ signal }) => {
              if (signal.aborted) attemptAbort.abort(signal.reason);
              else {
                signal.addEventListener('abort', () => attemptAbort.abort(signal.reason), {
                  once: true,
                });
              }
              return options.attempt({ ...info, signal: attemptAbort.signal });
            }, callSignal);
            return { ok: true, value };
          } catch (raw) {
            const { error, upstreamHealth } = classifyAttemptError(raw, timedOut, limitMs);
            // Thrown: the breaker counts it. Returned: the upstream answered, or the caller
            // left; neither says the replica is unhealthy. A cancelled probe proves nothing,
            // so it keeps the breaker open rather than closing it.
            if (upstreamHealth || (probe && error.code === 'CANCELLED')) throw error;
            return { ok: false, error };
          } finally {
            onTimeout.dispose();
            attemptAbort.abort(ATTEMPT_OVER);
          }
        }, callSignal);
      }, callSignal);
      try {
        const outcome = await untilAborted(work, callSignal);
        return outcome.ok ? outcome : { ok: false, error: outcome.error, ...called(attempt) };
      } catch (raw) {
        const error = classifyTryError(raw, target, replica, attempt !== undefined);
        return { ok: false, error, ...called(attempt) };
      } finally {
        report(target, guard);
      }
    }

    function classifyAttemptError(
      raw: unknown,
      timedOut: boolean,
      limitMs: number,
    ): { error: GatewayError; upstreamHealth: boolean } {
      if (options.signal.aborted) return { error: cancelled(records), upstreamHealth: false };
      if (timedOut) {
        return {
          error: new GatewayError(
            'TIMEOUT',
            `The tool server did not answer within ${limitMs} ms`,
            {
              retryable: true,
              delivery: 'maybe',
              details: { timeoutMs: limitMs },
              cause: raw,
            },
          ),
          upstreamHealth: true,
        };
      }
      if (GatewayError.isInstance(raw)) {
        const health =
          raw.delivery === 'maybe' || raw.code === 'UNAVAILABLE' || raw.code === 'TIMEOUT';
        return { error: raw, upstreamHealth: health && raw.code !== 'CANCELLED' };
      }
      return {
        error: new GatewayError('INTERNAL', 'The call failed inside the gateway', {
          retryable: false,
          delivery: 'maybe',
          cause: raw,
        }),
        upstreamHealth: false,
      };
    }

    function classifyTryError(
      raw: unknown,
      target: CallTarget,
      replica: string,
      called: boolean,
    ): GatewayError {
      const delivery: Delivery = called ? 'maybe' : 'no';
      if (options.signal.aborted) {
        return GatewayError.isInstance(raw) && raw.code === 'CANCELLED' ? raw : cancelled(records);
      }
      if (GatewayError.isInstance(raw)) return raw;
      if (deadlineHit) {
        return new GatewayError('TIMEOUT', 'The call deadline passed', {
          retryable: true,
          delivery,
          details: { deadlineMs },
        });
      }
      if (isBulkheadRejectedError(raw)) {
        emit({ type: 'bulkhead-rejected', serverId: target.serverId, replica });
        return new GatewayError('UNAVAILABLE', 'The tool server is at its concurrency limit', {
          retryable: true,
          delivery: 'no',
          cause: raw,
        });
      }
      if (isBrokenCircuitError(raw)) {
        const admission = guardFor(target, replica).admission();
        return circuitOpen(target.serverId, admission.admitted ? 0 : admission.retryAfterMs);
      }
      return new GatewayError('INTERNAL', 'The call failed inside the gateway', {
        retryable: false,
        delivery,
        cause: raw,
      });
    }

    function record(
      target: CallTarget,
      replica: string | undefined,
      attempt: number | undefined,
      fallback: boolean,
      error: GatewayError,
    ): void {
      const entry: AttemptRecord = {
        serverId: target.serverId,
        fallback,
        code: error.code,
        message: error.message,
        delivery: error.delivery,
        retryable: error.retryable,
      };
      if (replica !== undefined) entry.replicaIndex = target.replicas.indexOf(replica);
      if (attempt !== undefined) entry.attempt = attempt;
      if (error.retryAfterMs !== undefined) entry.retryAfterMs = error.retryAfterMs;
      records.push(entry);
    }

    type TargetOutcome =
      { served: true; value: T; replica: string } | { served: false; error: GatewayError };

    /** Tries on one logical server. Throws what must end the call; returns exhaustion. */
    async function runTarget(
      target: CallTarget,
      fallback: boolean,
      visit: { delivered: boolean },
    ): Promise<TargetOutcome> {
      const retry = target.policies.retry;
      const resendable = target.idempotent || options.hasIdempotencyKey;
      const tried = new Set<string>();
      let last: GatewayError | undefined;
      for (let tryNo = 1; tryNo <= retry.maxAttempts; tryNo++) {
        if (now() >= deadlineAt) return { served: false, error: last ?? deadlinePassed() };
        const choice = chooseReplica(target, tried);
        let replica: string | undefined;
        let attempt: number | undefined;
        let error: GatewayError;
        if (choice.kind === 'none') {
          error = new GatewayError('UNAVAILABLE', `No healthy replica of ${target.serverId}`, {
            retryable: true,
            delivery: 'no',
          });
        } else if (choice.kind === 'refused') {
          replica = choice.replica;
          error = circuitOpen(target.serverId, choice.retryAfterMs);
        } else {
          replica = choice.replica;
          const outcome = await tryReplica(target, replica, fallback);
          if (outcome.ok) return { served: true, value: outcome.value, replica };
          error = outcome.error;
          attempt = outcome.attempt;
        }
        if (replica !== undefined) tried.add(replica);
        if (error.delivery !== 'no') visit.delivered = true;
        record(target, replica, attempt, fallback, error);
        const failed = (willRetry: boolean, reason: FailureDecision) =>
          emit({
            type: 'attempt-failed',
            serverId: target.serverId,
            replica,
            attempt,
            fallback,
            error,
            willRetry,
            reason,
          });

        if (options.signal.aborted) {
          failed(false, 'cancelled');
          throw cancelled(records, error);
        }
        if (!error.retryable) {
          failed(false, 'not-retryable');
          throw withAttempts(error, records);
        }
        if (error.delivery === 'maybe' && !resendable) {
          failed(false, 'unsafe-to-retry');
          throw indeterminate(error, records);
        }
        last = error;
        if (choice.kind === 'none') {
          failed(false, 'no-replica');
          return { served: false, error };
        }
        if (tryNo >= retry.maxAttempts) {
          failed(false, 'attempts-exhausted');
          return { served: false, error };
        }
        const delayMs = retryDelayMs(retry, tryNo, error.retryAfterMs, random);
        if (now() + delayMs >= deadlineAt) {
          failed(false, 'deadline');
          return { served: false, error };
        }
        failed(true, 'retry');
        emit({ type: 'retry-scheduled', serverId: target.serverId, delayMs, reason: error.code });
        try {
          await sleep(delayMs, callSignal);
        } catch {
          if (options.signal.aborted) throw cancelled(records);
          return { served: false, error };
        }
      }
      return { served: false, error: last ?? deadlinePassed() };
    }

    try {
      const visits: { target: CallTarget; delivered: boolean }[] = [];
      let last: GatewayError | undefined;
      for (let index = 0; index < options.targets.length; index++) {
        const target = options.targets[index]!;
        const visit = { target, delivered: false };
        visits.push(visit);
        const outcome = await runTarget(target, index > 0, visit);
        if (outcome.served) {
          return {
            value: outcome.value,
            attempts,
            served: { serverId: target.serverId, replica: outcome.replica, fallback: index > 0 },
          };
        }
        last = outcome.error;
        const next = options.targets[index + 1];
        // A fallback is another logical server with its own idempotency scope: it may run the
        // call only if running it twice is safe, or if no request reached any server so far.
        const canFallBack =
          next !== undefined &&
          FALLBACK_CODES.has(last.code) &&
          now() < deadlineAt &&
          visits.every((v) => v.target.idempotent || !v.delivered);
        if (!canFallBack) break;
        emit({ type: 'fallback', from: target.serverId, to: next.serverId, reason: last.code });
      }
      throw withAttempts(last ?? deadlinePassed(), records);
    } finally {
      clearTimeout(deadlineTimer);
      options.signal.removeEventListener('abort', onCallerAbort);
    }
  }

  return {
    run,
    breakerState: (replica) => guards.get(replica)?.state() ?? 'closed',
    close() {
      for (const guard of guards.values()) guard.dispose();
      guards.clear();
      cursors.clear();
    },
  };
}

function called(attempt: number | undefined): { attempt?: number } {
  return attempt === undefined ? {} : { attempt };
}

function circuitOpen(serverId: string, retryAfterMs: number): GatewayError {
  return new GatewayError('CIRCUIT_OPEN', `${serverId} is failing; its circuit breaker is open`, {
    retryable: true,
    delivery: 'no',
    retryAfterMs: Math.max(1, Math.ceil(retryAfterMs)),
  });
}

function deadlinePassed(): GatewayError {
  return new GatewayError('TIMEOUT', 'The call deadline passed before an attempt could start', {
    retryable: true,
    delivery: 'no',
  });
}

function cancelled(records: readonly AttemptRecord[], cause?: unknown): GatewayError {
  const delivered = records.some((r) => r.delivery !== 'no');
  return new GatewayError('CANCELLED', 'The caller cancelled the call', {
    retryable: false,
    delivery: delivered ? 'maybe' : 'no',
    details: { attempts: [...records] },
    ...(cause !== undefined ? { cause } : {}),
  });
}

function indeterminate(error: GatewayError, records: readonly AttemptRecord[]): GatewayError {
  return new GatewayError(
    'INDETERMINATE',
    'The call may have run on the tool server, but no reply came back; it was not retried',
    {
      retryable: false,
      delivery: 'maybe',
      details: { cause: error.code, attempts: [...records] },
      cause: error,
    },
  );
}

/** The same error, with every try's record in `details.attempts` (other details kept). */
function withAttempts(error: GatewayError, records: readonly AttemptRecord[]): GatewayError {
  const details = error.details;
  const attempts = [...records];
  const merged =
    details === undefined
      ? { attempts }
      : isPlainObject(details)
        ? { ...details, attempts }
        : { details, attempts };
  return new GatewayError(error.code, error.message, {
    retryable: error.retryable,
    delivery: error.delivery,
    details: merged,
    cause: error,
    ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
    ...(error.upstream !== undefined ? { upstream: error.upstream } : {}),
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Settles like `promise`, or rejects as soon as `signal` aborts (the promise is then ignored). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  promise.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** `setTimeout` as a promise that rejects (and clears its timer) when `signal` aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
