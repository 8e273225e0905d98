import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { policiesSchema } from '../config/gateway-config.js';
import { createReplicaGuard, guardConfigKey } from './replica-guard.js';

const R1 = 'http://10.0.0.1:7101/mcp';

describe('replica guard', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const policies = policiesSchema.parse({
    breaker: { consecutiveFailures: 2, halfOpenAfterMs: 1_000, probeTimeoutMs: 200 },
  });
  const failing = () => Promise.reject(new Error('down'));

  it('admits while closed, refuses with the time left while open, then marks one call as the probe', async () => {
    const guard = createReplicaGuard(R1, policies, Date.now);
    expect(guard.admission()).toEqual({ admitted: true });
    await guard.breaker.execute(failing).catch(() => undefined);
    await guard.breaker.execute(failing).catch(() => undefined);
    expect(guard.state()).toBe('open');
    vi.advanceTimersByTime(400);
    expect(guard.admission()).toEqual({ admitted: false, retryAfterMs: 600 });
    expect(guard.takeProbe()).toBe(false);

    vi.advanceTimersByTime(600);
    expect(guard.admission()).toEqual({ admitted: true });
    let resolveProbe: (() => void) | undefined;
    let probeFlag: boolean | undefined;
    const probe = guard.breaker.execute(() => {
      probeFlag = guard.takeProbe();
      return new Promise<void>((resolve) => (resolveProbe = resolve));
    });
    expect(probeFlag).toBe(true);
    expect(guard.takeProbe()).toBe(false);
    expect(guard.state()).toBe('half-open');
    vi.advanceTimersByTime(50);
    expect(guard.admission()).toEqual({ admitted: false, retryAfterMs: 150 });
    resolveProbe!();
    await probe;
    expect(guard.state()).toBe('closed');
    guard.dispose();
  });

  it('keys its configuration on the breaker and bulkhead policies only', () => {
    const other = policiesSchema.parse({ deadlineMs: 1_234 });
    expect(guardConfigKey(other)).toBe(guardConfigKey(policiesSchema.parse({})));
    expect(guardConfigKey(policies)).not.toBe(guardConfigKey(other));
  });
});
