import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { policiesSchema } from '../config/gateway-config.js';
import type { Policies } from '../config/gateway-config.js';
import { GatewayError } from '../errors/gateway-error.js';
import type { Delivery } from '../errors/gateway-error.js';
import { createCallPipeline } from './call-pipeline.js';
import type {
  AttemptInfo,
  AttemptRecord,
  CallPipeline,
  CallTarget,
  PipelineEvent,
  RunCallOptions,
} from './call-pipeline.js';

// Captured before fake timers replace it: the fail-fast bound is about real time.
const realHrtime = process.hrtime.bigint.bind(process.hrtime);

const R1 = 'http://10.0.0.1:7101/mcp';
const R2 = 'http://10.0.0.2:7101/mcp';
const R3 = 'http://10.0.0.3:7101/mcp';
const F1 = 'http://10.0.1.1:7201/mcp';

type PolicyInput = Parameters<typeof policiesSchema.parse>[0];

function policies(overrides: Record<string, unknown> = {}): Policies {
  return policiesSchema.parse({
    deadlineMs: 5_000,
    attemptTimeoutMs: 2_000,
    retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 2_000 },
    breaker: { consecutiveFailures: 5, halfOpenAfterMs: 10_000, probeTimeoutMs: 500 },
    ...overrides,
  } as PolicyInput);
}

function target(overrides: Partial<CallTarget> = {}): CallTarget {
  return {
    serverId: 'orders',
    replicas: [R1, R2, R3],
    policies: policies(),
    idempotent: false,
    isHealthy: () => true,
    ...overrides,
  };
}

function fallbackTarget(overrides: Partial<CallTarget> = {}): CallTarget {
  return target({ serverId: 'orders-dr', replicas: [F1], ...overrides });
}

function fail(code: string, delivery: Delivery, extra: Record<string, unknown> = {}): GatewayError {
  return new GatewayError(code, `${code} (${delivery})`, { delivery, ...extra });
}

/** An attempt function that answers from a script, one entry per call, and records calls. */
function scripted(...steps: Array<(info: AttemptInfo) => Promise<string> | string>) {
  const calls: AttemptInfo[] = [];
  const attempt = async (info: AttemptInfo): Promise<string> => {
    calls.push(info);
    const step = steps[calls.length - 1] ?? steps[steps.length - 1];
    if (!step) throw new Error('script exhausted');
    return step(info);
  };
  return { attempt, calls };
}

const ok =
  (value = 'ok') =>
  () =>
    value;
const throws = (error: () => GatewayError) => () => {
  throw error();
};
/** Never settles until the attempt's signal aborts (a hung upstream that honours abort). */
const hangs = () => (info: AttemptInfo) =>
  new Promise<string>((_, reject) => {
    info.signal.addEventListener('abort', () =>
      reject(fail('CANCELLED', 'maybe', { retryable: false })),
    );
  });
/** Never settles at all (an upstream client that ignores abort). */
const hangsForever = () => () => new Promise<string>(() => undefined);

function collect() {
  const events: PipelineEvent[] = [];
  return { events, onEvent: (e: PipelineEvent) => events.push(e) };
}

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (error) {
    expect(GatewayError.isInstance(error)).toBe(true);
    return error as GatewayError;
  }
  throw new Error('expected the call to fail');
}

function attemptsOf(error: GatewayError): AttemptRecord[] {
  return (error.details as { attempts: AttemptRecord[] }).attempts;
}

describe('call pipeline', () => {
  let pipeline: CallPipeline;
  let caller: AbortController;

  beforeEach(() => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    caller = new AbortController();
    pipeline = createCallPipeline({ now: () => Date.now(), random: () => 0.5 });
  });

  afterEach(() => {
    pipeline.close();
    vi.useRealTimers();
  });

  function run(options: Partial<RunCallOptions<string>> & Pick<RunCallOptions<string>, 'attempt'>) {
    return pipeline.run<string>({
      targets: [target()],
      hasIdempotencyKey: false,
      signal: caller.signal,
      ...options,
    });
  }

  describe('success and replica choice', () => {
    it('serves the value of the first attempt and says where it ran', async () => {
      let abortedDuringAttempt: boolean | undefined;
      const { attempt, calls } = scripted((info) => {
        abortedDuringAttempt = info.signal.aborted;
        return 'result';
      });
      const result = await run({ attempt });
      expect(result).toEqual({
        value: 'result',
        attempts: 1,
        served: { serverId: 'orders', replica: calls[0]!.replica, fallback: false },
      });
      expect(calls[0]).toMatchObject({
        serverId: 'orders',
        attempt: 1,
        probe: false,
        fallback: false,
      });
      expect(abortedDuringAttempt).toBe(false);
      // Once the attempt is over its signal is aborted, so nothing it left behind keeps running.
      expect(calls[0]!.signal.aborted).toBe(true);
    });

    it('spreads calls round-robin over the healthy replicas only', async () => {
      const seen: string[] = [];
      const t = target({ isHealthy: (r) => r !== R2 });
      for (let i = 0; i < 4; i++) {
        const { attempt, calls } = scripted(ok());
        await run({ targets: [t], attempt });
        seen.push(calls[0]!.replica);
      }
      expect(seen).toEqual([R1, R3, R1, R3]);
    });

    it('a tool result is success even when it is an error result (only a throw fails)', async () => {
      const { attempt, calls } = scripted(ok('{"isError":true}'));
      await expect(run({ attempt })).resolves.toMatchObject({ value: '{"isError":true}' });
      expect(calls).toHaveLength(1);
    });
  });

  describe('retry', () => {
    it('retries a retryable failure that was not delivered, on another replica', async () => {
      const { attempt, calls } = scripted(
        throws(() => fail('UNAVAILABLE', 'no', { retryable: true })),
        ok('second'),
      );
      const { events, onEvent } = collect();
      const promise = run({ attempt, onEvent });
      await vi.runAllTimersAsync();
      const result = await promise;
      expect(result.value).toBe('second');
      expect(result.attempts).toBe(2);
      expect(calls.map((c) => c.attempt)).toEqual([1, 2]);
      expect(calls[1]!.replica).not.toBe(calls[0]!.replica);
      expect(events.map((e) => e.type)).toEqual([
        'attempt-start',
        'attempt-failed',
        'retry-scheduled',
        'attempt-start',
      ]);
      expect(events[1]).toMatchObject({ willRetry: true, reason: 'retry', attempt: 1 });
      expect(events[2]).toMatchObject({ serverId: 'orders', reason: 'UNAVAILABLE', delayMs: 50 });
    });

    it('never retries a non-retryable error, and never falls back after it', async () => {
      for (const code of ['INVALID_INPUT', 'FORBIDDEN', 'ORDER_NOT_FOUND']) {
        const { attempt, calls } = scripted(
          throws(() => fail(code, 'yes', { retryable: false, details: { path: ['orderId'] } })),
          ok('never'),
        );
        const fb = scripted(ok('fallback'));
        const error = await rejection(
          run({
            targets: [target({ idempotent: true }), fallbackTarget({ idempotent: true })],
            attempt: async (info) => (info.fallback ? fb.attempt(info) : attempt(info)),
          }),
        );
        expect(error.code).toBe(code);
        expect(calls).toHaveLength(1);
        expect(fb.calls).toHaveLength(0);
        // The error's own details stay; every attempt is kept beside them.
        expect(error.details).toMatchObject({ path: ['orderId'] });
        expect(attemptsOf(error)).toEqual([
          expect.objectContaining({ code, attempt: 1, delivery: 'yes' }),
        ]);
      }
    });

    it('S20 a lost reply without idempotency is INDETERMINATE after exactly one attempt', async () => {
      const { attempt, calls } = scripted(
        throws(() => fail('UNAVAILABLE', 'maybe', { retryable: true })),
        ok('must not run twice'),
      );
      const fb = scripted(ok('fallback'));
      const { events, onEvent } = collect();
      const error = await rejection(
        run({
          targets: [target(), fallbackTarget()],
          attempt: async (info) => (info.fallback ? fb.attempt(info) : attempt(info)),
          onEvent,
        }),
      );
      expect(error.code).toBe('INDETERMINATE');
      expect(error.retryable).toBe(false);
      expect(error.message).toMatch(/may have run/);
      expect(error.details).toMatchObject({ cause: 'UNAVAILABLE' });
      expect(attemptsOf(error)).toHaveLength(1);
      expect(calls).toHaveLength(1);
      expect(fb.calls).toHaveLength(0);
      expect(events.find((e) => e.type === 'attempt-failed')).toMatchObject({
        willRetry: false,
        reason: 'unsafe-to-retry',
      });
    });

    it('S19 a lost reply with an idempotency key is retried on another replica', async () => {
      const { attempt, calls } = scripted(
        throws(() => fail('UNAVAILABLE', 'maybe', { retryable: true })),
        ok('from another replica'),
      );
      const promise = run({ attempt, hasIdempotencyKey: true });
      await vi.runAllTimersAsync();
      await expect(promise).resolves.toMatchObject({ value: 'from another replica', attempts: 2 });
      expect(new Set(calls.map((c) => c.replica)).size).toBe(2);
    });

    it('S16 an idempotent tool whose replica dies mid-call is retried on another replica', async () => {
      const { attempt, calls } = scripted(
        throws(() => fail('UNAVAILABLE', 'maybe', { retryable: true })),
        ok('answer'),
      );
      const promise = run({ targets: [target({ idempotent: true })], attempt });
      await vi.runAllTimersAsync();
      await expect(promise).resolves.toMatchObject({ value: 'answer' });
      expect(calls[1]!.replica).not.toBe(calls[0]!.replica);
    });

    it('goes to other replicas first, then reuses one', async () => {
      const t = target({ replicas: [R1, R2], policies: policies({ retry: { maxAttempts: 4 } }) });
      const { attempt, calls } = scripted(
        throws(() => fail('UNAVAILABLE', 'no', { retryable: true })),
      );
      const settled = rejection(run({ targets: [t], attempt }));
      await vi.runAllTimersAsync();
      const error = await settled;
      expect(error.code).toBe('UNAVAILABLE');
      expect(
        calls
          .map((c) => c.replica)
          .slice(0, 2)
          .sort(),
      ).toEqual([R1, R2]);
      expect(calls).toHaveLength(4);
      expect(attemptsOf(error).map((a) => a.attempt)).toEqual([1, 2, 3, 4]);
    });

    it('backs off with full jitter: random() * min(maxDelayMs, baseDelayMs * 2^(n-1))', async () => {
      for (const [draw, expected] of [
        [0, [0, 0, 0, 0]],
        [0.999, [99, 199, 399, 499]],
      ] as const) {
        const delays: number[] = [];
        const jittered = createCallPipeline({
          now: () => Date.now(),
          random: () => draw,
          sleep: async (ms) => {
            delays.push(ms);
          },
        });
        const t = target({
          policies: policies({ retry: { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 500 } }),
        });
        const { attempt } = scripted(throws(() => fail('UNAVAILABLE', 'no', { retryable: true })));
        await rejection(
          jittered.run({ targets: [t], hasIdempotencyKey: false, signal: caller.signal, attempt }),
        );
        expect(delays).toEqual(expected);
        jittered.close();
      }
    });

    it('waits at least the retryAfterMs the failure asked for', async () => {
      const delays: number[] = [];
      const p = createCallPipeline({
        now: () => Date.now(),
        random: () => 0.999,
        sleep: async (ms) => {
          delays.push(ms);
        },
      });
      const { attempt } = scripted(
        throws(() => fail('RATE_LIMITED', 'yes', { retryable: true, retryAfterMs: 1_200 })),
        throws(() => fail('CONFLICT', 'yes', { retryable: true, retryAfterMs: 5 })),
        ok('done'),
      );
      await expect(
        p.run({ targets: [target()], hasIdempotencyKey: false, signal: caller.signal, attempt }),
      ).resolves.toMatchObject({ value: 'done', attempts: 3 });
      // 1_200 beats the jitter draw (< 100); the draw (< 200) beats 5.
      expect(delays).toEqual([1_200, 199]);
      p.close();
    });

    it('never sleeps past the deadline: a retryAfterMs beyond it ends the call now', async () => {
      const sleep = vi.fn(async () => undefined);
      const p = createCallPipeline({ now: () => Date.now(), random: () => 0, sleep });
      const { attempt, calls } = scripted(
        throws(() => fail('RATE_LIMITED', 'yes', { retryable: true, retryAfterMs: 60_000 })),
      );
      const error = await rejection(
        p.run({ targets: [target()], hasIdempotencyKey: false, signal: caller.signal, attempt }),
      );
      expect(error.code).toBe('RATE_LIMITED');
      expect(error.retryAfterMs).toBe(60_000);
      expect(calls).toHaveLength(1);
      expect(sleep).not.toHaveBeenCalled();
      p.close();
    });
  });

  describe('timeouts and the deadline', () => {
    it('S17 an attempt that hangs times out (TIMEOUT, maybe delivered); its signal is aborted', async () => {
      const { attempt, calls } = scripted(hangs(), ok('second'));
      const started = Date.now();
      const promise = run({ targets: [target({ idempotent: true })], attempt });
      await vi.advanceTimersByTimeAsync(1_999);
      expect(calls).toHaveLength(1);
      expect(calls[0]!.signal.aborted).toBe(false);
      await vi.runAllTimersAsync();
      await expect(promise).resolves.toMatchObject({ value: 'second', attempts: 2 });
      expect(calls[0]!.signal.aborted).toBe(true);
      expect(calls[1]!.replica).not.toBe(calls[0]!.replica);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
      expect(Date.now() - started).toBeLessThan(2_200);
    });

    it('S17 a hung non-idempotent call is not retried: INDETERMINATE after the per-try timeout', async () => {
      const { attempt, calls } = scripted(hangsForever());
      const started = Date.now();
      const promise = run({ attempt });
      const settled = rejection(promise);
      await vi.advanceTimersByTimeAsync(2_000);
      const error = await settled;
      expect(error.code).toBe('INDETERMINATE');
      expect(error.details).toMatchObject({ cause: 'TIMEOUT' });
      expect(calls).toHaveLength(1);
      expect(Date.now() - started).toBe(2_000);
    });

    it('keeps the deadline: the last attempt gets only the time left, then TIMEOUT surfaces', async () => {
      const t = target({
        idempotent: true,
        policies: policies({
          deadlineMs: 5_000,
          attemptTimeoutMs: 2_000,
          retry: { maxAttempts: 10, baseDelayMs: 0, maxDelayMs: 0 },
        }),
      });
      const { attempt, calls } = scripted(hangsForever());
      const started = Date.now();
      let settledAt = 0;
      const settled = rejection(
        run({ targets: [t], attempt }).finally(() => (settledAt = Date.now())),
      );
      await vi.advanceTimersByTimeAsync(10_000);
      const error = await settled;
      expect(error.code).toBe('TIMEOUT');
      expect(error.delivery).toBe('maybe');
      // 2 s + 2 s + the 1 s left.
      expect(calls).toHaveLength(3);
      expect(attemptsOf(error).map((a) => a.code)).toEqual(['TIMEOUT', 'TIMEOUT', 'TIMEOUT']);
      expect(calls.every((c) => c.signal.aborted)).toBe(true);
      expect(vi.getTimerCount()).toBe(0);
      expect(settledAt - started).toBe(5_000);
    });

    it('the deadline comes from the primary and covers the fallbacks too', async () => {
      const primary = target({
        idempotent: true,
        policies: policies({ deadlineMs: 3_000, retry: { maxAttempts: 1 } }),
      });
      const fb = fallbackTarget({
        idempotent: true,
        policies: policies({ deadlineMs: 60_000, attemptTimeoutMs: 30_000 }),
      });
      const { attempt, calls } = scripted(hangsForever());
      const started = Date.now();
      let settledAt = 0;
      const settled = rejection(
        run({ targets: [primary, fb], attempt }).finally(() => (settledAt = Date.now())),
      );
      await vi.advanceTimersByTimeAsync(60_000);
      const error = await settled;
      expect(error.code).toBe('TIMEOUT');
      expect(calls.map((c) => c.fallback)).toEqual([false, true]);
      expect(settledAt - started).toBe(3_000);
    });
  });

  describe('circuit breaker', () => {
    const breakerTarget = (overrides: Partial<CallTarget> = {}) =>
      target({
        replicas: [R1],
        idempotent: true,
        policies: policies({
          retry: { maxAttempts: 1 },
          breaker: { consecutiveFailures: 3, halfOpenAfterMs: 10_000, probeTimeoutMs: 300 },
        }),
        ...overrides,
      });

    async function trip(t: CallTarget) {
      for (let i = 0; i < 3; i++) {
        const { attempt } = scripted(
          throws(() => fail('UNAVAILABLE', 'maybe', { retryable: true })),
        );
        await rejection(run({ targets: [t], attempt }));
      }
    }

    it('S18 opens after N consecutive upstream failures, then fails fast without calling attempt', async () => {
      const t = breakerTarget();
      const { events, onEvent } = collect();
      for (let i = 0; i < 3; i++) {
        expect(pipeline.breakerState(R1)).toBe('closed');
        const { attempt } = scripted(
          throws(() => fail('UNAVAILABLE', 'maybe', { retryable: true })),
        );
        await rejection(run({ targets: [t], attempt, onEvent }));
      }
      expect(pipeline.breakerState(R1)).toBe('open');
      expect(events.filter((e) => e.type === 'breaker-state')).toEqual([
        { type: 'breaker-state', serverId: 'orders', replica: R1, state: 'open' },
      ]);

      vi.advanceTimersByTime(4_000);
      const attempt = vi.fn(async () => 'never');
      const before = realHrtime();
      const error = await rejection(run({ targets: [t], attempt }));
      const elapsedMs = Number(realHrtime() - before) / 1e6;
      expect(error.code).toBe('CIRCUIT_OPEN');
      expect(error.retryable).toBe(true);
      expect(error.delivery).toBe('no');
      expect(error.retryAfterMs).toBe(6_000);
      expect(attempt).not.toHaveBeenCalled();
      expect(elapsedMs).toBeLessThan(5);
    });

    it('counts only upstream-health failures, not a tool answering with its own error', async () => {
      const t = breakerTarget();
      for (let i = 0; i < 5; i++) {
        const { attempt } = scripted(throws(() => fail('CONFLICT', 'yes', { retryable: true })));
        await rejection(run({ targets: [t], attempt }));
        const business = scripted(throws(() => fail('ORDER_NOT_FOUND', 'yes')));
        await rejection(run({ targets: [t], attempt: business.attempt }));
      }
      expect(pipeline.breakerState(R1)).toBe('closed');
      // An answered call between health failures resets the consecutive count.
      for (let i = 0; i < 4; i++) {
        const { attempt } = scripted(throws(() => fail('TIMEOUT', 'maybe', { retryable: true })));
        await rejection(run({ targets: [t], attempt }));
        if (i === 1) {
          const business = scripted(throws(() => fail('ORDER_NOT_FOUND', 'yes')));
          await rejection(run({ targets: [t], attempt: business.attempt }));
        }
      }
      expect(pipeline.breakerState(R1)).toBe('closed');
    });

    it('S18 lets exactly one probe through per half-open window; the others fail fast', async () => {
      const t = breakerTarget();
      await trip(t);
      vi.advanceTimersByTime(10_000);

      const calls: AttemptInfo[] = [];
      let release: (() => void) | undefined;
      const attempt = (info: AttemptInfo) => {
        calls.push(info);
        return new Promise<string>((resolve) => {
          release = () => resolve('probe answered');
        });
      };
      const { events, onEvent } = collect();
      const probe = run({ targets: [t], attempt, onEvent });
      const others = await Promise.allSettled(
        Array.from({ length: 5 }, () => run({ targets: [t], attempt })),
      );
      expect(others.map((o) => o.status)).toEqual(Array(5).fill('rejected'));
      for (const other of others) {
        expect(((other as PromiseRejectedResult).reason as GatewayError).code).toBe('CIRCUIT_OPEN');
      }
      expect(calls).toHaveLength(1);
      expect(calls[0]!.probe).toBe(true);
      expect(pipeline.breakerState(R1)).toBe('half-open');

      release!();
      await expect(probe).resolves.toMatchObject({ value: 'probe answered' });
      expect(pipeline.breakerState(R1)).toBe('closed');
      expect(
        events.filter((e) => e.type === 'breaker-state').map((e) => ('state' in e ? e.state : '')),
      ).toEqual(['half-open', 'closed']);
      await expect(run({ targets: [t], attempt: async () => 'normal' })).resolves.toMatchObject({
        value: 'normal',
      });
    });

    it('S18 a hung probe is cut at probeTimeoutMs, re-opens the breaker, and the next window probes once more', async () => {
      const t = breakerTarget();
      await trip(t);
      vi.advanceTimersByTime(10_000);

      const { attempt, calls } = scripted(hangsForever());
      const probe = rejection(run({ targets: [t], attempt }));
      await vi.advanceTimersByTimeAsync(299);
      expect(calls).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      const error = await probe;
      expect(error.code).toBe('TIMEOUT');
      expect((error.cause as GatewayError).details).toMatchObject({ timeoutMs: 300 });
      expect(pipeline.breakerState(R1)).toBe('open');

      // Still open within the new window...
      const refused = await rejection(run({ targets: [t], attempt }));
      expect(refused.code).toBe('CIRCUIT_OPEN');
      expect(calls).toHaveLength(1);
      // ...and one more probe after it.
      await vi.advanceTimersByTimeAsync(10_000);
      const second = scripted(ok('recovered'));
      await expect(run({ targets: [t], attempt: second.attempt })).resolves.toMatchObject({
        value: 'recovered',
      });
      expect(second.calls[0]!.probe).toBe(true);
      expect(pipeline.breakerState(R1)).toBe('closed');
    });

    it('skips a replica whose breaker is open while another replica can serve', async () => {
      const t = breakerTarget({ replicas: [R1, R2] });
      const failing = (info: AttemptInfo) => {
        if (info.replica === R1) throw fail('UNAVAILABLE', 'no', { retryable: true });
        return 'r2';
      };
      for (let i = 0; i < 6; i++)
        await run({ targets: [t], attempt: async (info) => failing(info) }).catch(() => undefined);
      expect(pipeline.breakerState(R1)).toBe('open');
      const { attempt, calls } = scripted(ok('r2'));
      for (let i = 0; i < 3; i++) await run({ targets: [t], attempt });
      expect(calls.map((c) => c.replica)).toEqual([R2, R2, R2]);
    });

    it('opens on a failure ratio when failureRatio is set (sampling breaker)', async () => {
      const t = breakerTarget({
        policies: policies({
          retry: { maxAttempts: 1 },
          breaker: {
            consecutiveFailures: 100,
            failureRatio: 0.5,
            windowMs: 10_000,
            minCalls: 4,
            halfOpenAfterMs: 5_000,
          },
        }),
      });
      await run({ targets: [t], attempt: async () => 'fine' });
      for (let i = 0; i < 2; i++) {
        const { attempt } = scripted(
          throws(() => fail('UNAVAILABLE', 'maybe', { retryable: true })),
        );
        await rejection(run({ targets: [t], attempt }));
      }
      // 2 of 3 failed, but fewer than minCalls calls so far.
      expect(pipeline.breakerState(R1)).toBe('closed');
      const { attempt } = scripted(throws(() => fail('UNAVAILABLE', 'maybe', { retryable: true })));
      await rejection(run({ targets: [t], attempt }));
      expect(pipeline.breakerState(R1)).toBe('open');
    });
  });

  describe('bulkhead', () => {
    it('rejects with UNAVAILABLE (not delivered) when the replica is at its limit and queue', async () => {
      const t = target({
        replicas: [R1],
        policies: policies({
          retry: { maxAttempts: 1 },
          bulkhead: { maxConcurrent: 1, maxQueue: 1 },
        }),
      });
      const first = scripted(hangs());
      const running = rejection(run({ targets: [t], attempt: first.attempt }));
      const queuedCaller = new AbortController();
      const queued = scripted(ok('queued'));
      const waiting = rejection(
        run({ targets: [t], attempt: queued.attempt, signal: queuedCaller.signal }),
      );
      const { events, onEvent } = collect();
      const third = scripted(ok('never'));
      const error = await rejection(run({ targets: [t], attempt: third.attempt, onEvent }));
      expect(error.code).toBe('UNAVAILABLE');
      expect(error.delivery).toBe('no');
      expect(error.retryable).toBe(true);
      expect(third.calls).toHaveLength(0);
      expect(events).toContainEqual({ type: 'bulkhead-rejected', serverId: 'orders', replica: R1 });

      // A caller waiting in the queue is not held there once it aborts.
      queuedCaller.abort();
      expect((await waiting).code).toBe('CANCELLED');
      expect(queued.calls).toHaveLength(0);
      caller.abort();
      expect((await running).code).toBe('CANCELLED');
    });
  });

  describe('fallback', () => {
    it('an idempotent tool falls back after lost replies on the primary', async () => {
      const primary = target({
        idempotent: true,
        policies: policies({ retry: { maxAttempts: 2 } }),
      });
      const fb = fallbackTarget({ idempotent: true });
      const { events, onEvent } = collect();
      const calls: AttemptInfo[] = [];
      const promise = run({
        targets: [primary, fb],
        onEvent,
        attempt: async (info) => {
          calls.push(info);
          if (!info.fallback) throw fail('UNAVAILABLE', 'maybe', { retryable: true });
          return 'from fallback';
        },
      });
      await vi.runAllTimersAsync();
      const result = await promise;
      expect(result).toEqual({
        value: 'from fallback',
        attempts: 3,
        served: { serverId: 'orders-dr', replica: F1, fallback: true },
      });
      expect(calls.map((c) => [c.serverId, c.attempt, c.fallback])).toEqual([
        ['orders', 1, false],
        ['orders', 2, false],
        ['orders-dr', 3, true],
      ]);
      expect(events).toContainEqual({
        type: 'fallback',
        from: 'orders',
        to: 'orders-dr',
        reason: 'UNAVAILABLE',
      });
    });

    it('a fallback gets its own maxAttempts', async () => {
      const primary = target({
        idempotent: true,
        policies: policies({ retry: { maxAttempts: 1 } }),
      });
      const fb = fallbackTarget({
        idempotent: true,
        replicas: [F1, 'http://10.0.1.2:7201/mcp'],
        policies: policies({ retry: { maxAttempts: 3 } }),
      });
      const { attempt, calls } = scripted(
        throws(() => fail('TIMEOUT', 'maybe', { retryable: true })),
        throws(() => fail('UNAVAILABLE', 'no', { retryable: true })),
        throws(() => fail('UNAVAILABLE', 'no', { retryable: true })),
        ok('third try on the fallback'),
      );
      const promise = run({ targets: [primary, fb], attempt });
      await vi.runAllTimersAsync();
      await expect(promise).resolves.toMatchObject({ value: 'third try on the fallback' });
      expect(calls.map((c) => c.fallback)).toEqual([false, true, true, true]);
    });

    it('a non-idempotent tool with an idempotency key does not fall back once a request may have run', async () => {
      const primary = target({ policies: policies({ retry: { maxAttempts: 2 } }) });
      const fb = scripted(ok('fallback'));
      const primaryScript = scripted(
        throws(() => fail('UNAVAILABLE', 'maybe', { retryable: true })),
      );
      const promise = rejection(
        run({
          targets: [primary, fallbackTarget()],
          hasIdempotencyKey: true,
          attempt: (info) => (info.fallback ? fb.attempt(info) : primaryScript.attempt(info)),
        }),
      );
      await vi.runAllTimersAsync();
      const error = await promise;
      expect(error.code).toBe('UNAVAILABLE');
      expect(primaryScript.calls).toHaveLength(2);
      expect(fb.calls).toHaveLength(0);
      expect(attemptsOf(error)).toHaveLength(2);
    });

    it('a non-idempotent tool falls back when no request reached the primary', async () => {
      const primary = target({ policies: policies({ retry: { maxAttempts: 3 } }) });
      const { events, onEvent } = collect();
      const calls: AttemptInfo[] = [];
      const promise = run({
        targets: [primary, fallbackTarget()],
        onEvent,
        attempt: async (info) => {
          calls.push(info);
          if (!info.fallback) throw fail('UNAVAILABLE', 'no', { retryable: true });
          return 'fallback ran it once';
        },
      });
      await vi.runAllTimersAsync();
      await expect(promise).resolves.toMatchObject({
        value: 'fallback ran it once',
        served: { fallback: true },
      });
      expect(calls).toHaveLength(4);
      expect(events.filter((e) => e.type === 'fallback')).toHaveLength(1);
    });

    it('no healthy replica: UNAVAILABLE without an attempt, and the fallback serves', async () => {
      const primary = target({ isHealthy: () => false });
      const { attempt, calls } = scripted(ok('fallback'));
      const { events, onEvent } = collect();
      const result = await run({ targets: [primary, fallbackTarget()], attempt, onEvent });
      expect(result.served).toEqual({ serverId: 'orders-dr', replica: F1, fallback: true });
      expect(calls).toHaveLength(1);
      expect(events[0]).toMatchObject({
        type: 'attempt-failed',
        reason: 'no-replica',
        attempt: undefined,
        replica: undefined,
      });
      expect((events[0] as { error: GatewayError }).error.code).toBe('UNAVAILABLE');

      const alone = await rejection(run({ targets: [primary], attempt }));
      expect(alone.code).toBe('UNAVAILABLE');
      expect(alone.delivery).toBe('no');
      expect(calls).toHaveLength(1);
    });

    it('falls back when every replica of the primary has its breaker open', async () => {
      const primary = target({
        replicas: [R1],
        policies: policies({
          retry: { maxAttempts: 1 },
          breaker: { consecutiveFailures: 1, halfOpenAfterMs: 30_000 },
        }),
      });
      const { attempt } = scripted(throws(() => fail('UNAVAILABLE', 'no', { retryable: true })));
      await rejection(run({ targets: [primary], attempt }));
      expect(pipeline.breakerState(R1)).toBe('open');
      const fb = scripted(ok('fallback'));
      await expect(
        run({ targets: [primary, fallbackTarget()], attempt: fb.attempt }),
      ).resolves.toMatchObject({ served: { fallback: true } });
    });

    it('does not fall back on other retryable failures (the upstream answered)', async () => {
      const primary = target({
        idempotent: true,
        policies: policies({ retry: { maxAttempts: 2 } }),
      });
      const { attempt, calls } = scripted(
        throws(() => fail('CONFLICT', 'yes', { retryable: true })),
      );
      const promise = rejection(
        run({ targets: [primary, fallbackTarget({ idempotent: true })], attempt }),
      );
      await vi.runAllTimersAsync();
      expect((await promise).code).toBe('CONFLICT');
      expect(calls.every((c) => !c.fallback)).toBe(true);
    });
  });

  describe('cancellation', () => {
    it('a caller abort during an attempt ends the call with CANCELLED, not retried', async () => {
      const { attempt, calls } = scripted(hangs(), ok('never'));
      const { events, onEvent } = collect();
      const promise = rejection(run({ targets: [target({ idempotent: true })], attempt, onEvent }));
      await vi.advanceTimersByTimeAsync(100);
      caller.abort();
      const error = await promise;
      expect(error.code).toBe('CANCELLED');
      expect(error.retryable).toBe(false);
      expect(calls).toHaveLength(1);
      expect(calls[0]!.signal.aborted).toBe(true);
      expect(events.find((e) => e.type === 'attempt-failed')).toMatchObject({
        willRetry: false,
        reason: 'cancelled',
      });
      // Timers (deadline, per-try timeout) are cleared once the attempt has unwound.
      for (let i = 0; i < 10; i++) await Promise.resolve();
      expect(vi.getTimerCount()).toBe(0);
    });

    it('a caller abort during the backoff wait ends the call at once', async () => {
      const { attempt, calls } = scripted(
        throws(() => fail('UNAVAILABLE', 'no', { retryable: true })),
      );
      const slow = target({
        policies: policies({ retry: { baseDelayMs: 1_000, maxDelayMs: 1_000 } }),
      });
      const promise = rejection(run({ targets: [slow], attempt }));
      await vi.advanceTimersByTimeAsync(100);
      caller.abort();
      const error = await promise;
      expect(error.code).toBe('CANCELLED');
      expect(calls).toHaveLength(1);
      expect(attemptsOf(error)).toHaveLength(1);
    });

    it('an already aborted call makes no attempt', async () => {
      caller.abort();
      const attempt = vi.fn(async () => 'never');
      expect((await rejection(run({ attempt }))).code).toBe('CANCELLED');
      expect(attempt).not.toHaveBeenCalled();
    });

    it('a caller abort does not count against the breaker', async () => {
      const t = target({
        replicas: [R1],
        policies: policies({ breaker: { consecutiveFailures: 1 } }),
      });
      const { attempt } = scripted(hangs());
      const promise = rejection(run({ targets: [t], attempt }));
      caller.abort();
      await promise;
      expect(pipeline.breakerState(R1)).toBe('closed');
    });
  });

  it('close() drops per-replica state', async () => {
    const t = target({
      replicas: [R1],
      policies: policies({ retry: { maxAttempts: 1 }, breaker: { consecutiveFailures: 1 } }),
    });
    await rejection(
      run({
        targets: [t],
        attempt: async () => {
          throw fail('UNAVAILABLE', 'maybe', { retryable: true });
        },
      }),
    );
    expect(pipeline.breakerState(R1)).toBe('open');
    pipeline.close();
    expect(pipeline.breakerState(R1)).toBe('closed');
  });
});
