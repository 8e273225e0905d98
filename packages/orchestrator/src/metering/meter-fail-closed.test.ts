/**
 * S23 (RELIABILITY.md), orchestrator side: while Redis is gone or hung, budget checks fail
 * closed with a retryable UNAVAILABLE within a bounded time; after Redis returns, the meter
 * works again without a new client. Uses a redis-server of its own, to kill and restart.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, startRedisServer } from '@keel/tool-sdk/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Meter, MeterScope, ReserveResult } from './meter.js';
import { MeterUnavailableError } from './meter-error.js';
import { createRedisMeter } from './redis-meter.js';
import { meterRedisOptions } from './redis-options.js';

function stopped(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const started = performance.now();
  try {
    return { ms: performance.now() - started, value: await fn() };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

function expectUnavailable(error: unknown): void {
  expect(MeterUnavailableError.isInstance(error)).toBe(true);
  const e = error as MeterUnavailableError;
  expect(e.keel).toMatchObject({ code: 'UNAVAILABLE', retryable: true, retryAfterMs: 1_000 });
  expect(e.toKeelError('corr-1')).toMatchObject({ code: 'UNAVAILABLE', correlationId: 'corr-1' });
  expect(e.keel.message).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|\n\s+at /);
}

describe('Redis meter fails closed (own redis-server)', () => {
  let port: number;
  let dir: string;
  let server: ChildProcess | undefined;
  let client: Redis;
  let meter: Meter;
  const scope: MeterScope = { tenant: 'acme', user: 'alice', sessionId: 's1' };
  const limits = { sessionUsd: 1, userDayUsd: 5, tenantMonthUsd: 100 };

  beforeAll(async () => {
    port = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'keel-meter-redis-'));
    server = await startRedisServer(port, dir);
    client = new Redis(`redis://127.0.0.1:${port}`, meterRedisOptions());
    client.on('error', () => {}); // connection errors surface as failed meter calls
    await new Promise((resolve) => client.once('ready', resolve));
    meter = createRedisMeter({ redis: client });
  }, 20_000);

  afterAll(async () => {
    client.disconnect();
    if (server && server.exitCode === null && server.signalCode === null) {
      server.kill('SIGCONT');
      server.kill('SIGKILL');
      await stopped(server);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('S23 reserve rejects with UNAVAILABLE within 1 s while Redis is hung or gone, and works again after a restart', async () => {
    const first = await meter.reserve(scope, limits, 0.1);
    expect(first.ok).toBe(true);

    // Hung (SIGSTOP): the connection is up but nothing answers.
    server!.kill('SIGSTOP');
    const hung = await timed(() => meter.reserve(scope, limits, 0.1));
    expect(hung.ms).toBeLessThan(1_000);
    expectUnavailable(hung.error);
    server!.kill('SIGCONT');

    // Gone (kill -9): every budget check is refused, fast.
    server!.kill('SIGKILL');
    await stopped(server!);
    for (let i = 0; i < 5; i++) {
      const down = await timed(() => meter.reserve(scope, limits, 0.1));
      expect(down.ms).toBeLessThan(1_000);
      expectUnavailable(down.error);
    }
    if (first.ok) {
      const settle = await timed(() =>
        meter.settle(first.reservation, {
          model: 'm',
          provider: 'anthropic',
          inputTokens: 1,
          outputTokens: 1,
          cacheReadTokens: 0,
          cacheWriteTokens: 0,
          costUsd: 0.01,
        }),
      );
      expect(settle.ms).toBeLessThan(1_000);
      expectUnavailable(settle.error);
    }
    const usage = await timed(() => meter.usage('acme', 'alice'));
    expect(usage.ms).toBeLessThan(2_000);
    expectUnavailable(usage.error);

    // Back on the same port: the same client reconnects by itself and scripts load again.
    server = await startRedisServer(port, dir);
    const restarted = performance.now();
    let back: ReserveResult | undefined;
    for (let i = 0; i < 60 && !back; i++) {
      const attempt = await timed(() => meter.reserve(scope, limits, 0.1));
      if (attempt.value) back = attempt.value;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(back?.ok).toBe(true);
    expect(performance.now() - restarted).toBeLessThan(6_000); // recovery <= 2 s, x3 margin
    // Counting works again against the limits (a fresh server without persistence). A
    // recovery attempt that timed out on the client may still have run on the server and hold
    // its $0.10, so the session's $1 admits 8 or 9 more, then refuses.
    let admitted = 0;
    let refusal: ReserveResult | undefined;
    for (let i = 0; i < 11 && refusal === undefined; i++) {
      const result = await meter.reserve(scope, limits, 0.1);
      if (result.ok) admitted += 1;
      else refusal = result;
    }
    expect(admitted).toBeGreaterThanOrEqual(8);
    expect(admitted).toBeLessThanOrEqual(9);
    expect(refusal).toMatchObject({ ok: false, kind: 'session' });
  }, 30_000);
});
