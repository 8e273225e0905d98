/**
 * What stands in front of one upstream replica URL: a cockatiel circuit breaker and a
 * cockatiel bulkhead, made from the policies of the server the replica belongs to.
 *
 * Cockatiel's breaker makes callers that arrive while the half-open probe runs wait for the
 * probe. A gateway must not hold callers behind a probe, so {@link ReplicaGuard.admission} is
 * asked first and refuses them (fail fast) while the probe is out; only the caller that finds
 * the breaker open and due becomes the probe.
 */
import {
  CircuitState,
  ConsecutiveBreaker,
  SamplingBreaker,
  bulkhead,
  circuitBreaker,
  handleAll,
} from 'cockatiel';
import type { BulkheadPolicy, CircuitBreakerPolicy, IBreaker, IDisposable } from 'cockatiel';
import type { Policies } from '../config/gateway-config.js';

/** A breaker's state as the gateway reports it (an isolated breaker counts as open). */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** Whether a replica takes a call now; when not, how long until it may. */
export type Admission = { admitted: true } | { admitted: false; retryAfterMs: number };

/** Breaker and bulkhead of one replica. */
export interface ReplicaGuard {
  readonly replica: string;
  readonly breaker: CircuitBreakerPolicy;
  readonly bulkhead: BulkheadPolicy;
  /** The policies it was made from, to notice a configuration change. */
  readonly configKey: string;
  readonly probeTimeoutMs: number;
  /** Closed, or open and due for its probe: admitted. Open and not due, or probing: refused. */
  admission(): Admission;
  /** True exactly once per half-open window: for the call cockatiel runs as the probe. */
  takeProbe(): boolean;
  state(): BreakerState;
  /** The state last reported to any caller, so each change is reported once. */
  reported: BreakerState;
  dispose(): void;
}

/** The part of {@link Policies} a guard is made from. */
export type GuardPolicies = Pick<Policies, 'breaker' | 'bulkhead'>;

/**
 * Make the guard of one replica.
 *
 * `now` must move with `Date.now`: cockatiel's breaker reads `Date.now` itself (fake timers
 * in tests move both).
 *
 * @example
 * ```ts
 * import { policiesSchema } from '../config/gateway-config.js';
 * const guard = createReplicaGuard('http://10.0.0.7:7101/mcp', policiesSchema.parse({}), Date.now);
 * guard.admission(); // { admitted: true }
 * ```
 */
export function createReplicaGuard(
  replica: string,
  policies: GuardPolicies,
  now: () => number,
): ReplicaGuard {
  const { breaker: b, bulkhead: bh } = policies;
  const breakerAlgorithm: IBreaker =
    b.failureRatio === undefined
      ? new ConsecutiveBreaker(b.consecutiveFailures)
      : new SamplingBreaker({
          // cockatiel wants a ratio strictly inside (0, 1); 1 means "every call failed".
          threshold: Math.min(b.failureRatio, 0.999_999),
          duration: b.windowMs,
          minimumRps: b.minCalls / (b.windowMs / 1000),
        });
  const breaker = circuitBreaker(handleAll, {
    halfOpenAfter: b.halfOpenAfterMs,
    breaker: breakerAlgorithm,
  });
  let openedAt = 0;
  let probeStartedAt = 0;
  let probePending = false;
  const subscriptions: IDisposable[] = [
    breaker.onBreak(() => {
      openedAt = now();
    }),
    breaker.onHalfOpen(() => {
      // Cockatiel emits this synchronously right before it runs the probe's function.
      probePending = true;
      probeStartedAt = now();
    }),
  ];

  const guard: ReplicaGuard = {
    replica,
    breaker,
    bulkhead: bulkhead(bh.maxConcurrent, bh.maxQueue),
    configKey: guardConfigKey(policies),
    probeTimeoutMs: b.probeTimeoutMs,
    reported: 'closed',
    admission() {
      switch (breaker.state) {
        case CircuitState.Closed:
          return { admitted: true };
        case CircuitState.Open: {
          const wait = openedAt + b.halfOpenAfterMs - now();
          return wait <= 0 ? { admitted: true } : { admitted: false, retryAfterMs: wait };
        }
        case CircuitState.HalfOpen:
          return {
            admitted: false,
            retryAfterMs: Math.max(1, probeStartedAt + b.probeTimeoutMs - now()),
          };
        default:
          return { admitted: false, retryAfterMs: b.halfOpenAfterMs };
      }
    },
    takeProbe() {
      const probe = probePending;
      probePending = false;
      return probe;
    },
    state() {
      switch (breaker.state) {
        case CircuitState.Closed:
          return 'closed';
        case CircuitState.HalfOpen:
          return 'half-open';
        default:
          return 'open';
      }
    },
    dispose() {
      for (const subscription of subscriptions) subscription.dispose();
    },
  };
  return guard;
}

/** Equal for equal breaker and bulkhead policies. */
export function guardConfigKey(policies: GuardPolicies): string {
  return JSON.stringify([policies.breaker, policies.bulkhead]);
}
