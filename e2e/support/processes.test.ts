import { afterEach, describe, expect, it } from 'vitest';
import { startFaultProxy } from './fault-proxy.js';
import type { FaultProxy } from './fault-proxy.js';
import { freePort, ProcessStartError, startExampleToolServer, startProcess } from './processes.js';
import type { ExampleToolServer, RunningProcess } from './processes.js';

const node = process.execPath;

describe('process helpers', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
  });
  const track = <T extends RunningProcess | ExampleToolServer | FaultProxy>(value: T): T => {
    cleanups.push(() => ('close' in value ? value.close() : value.stop()));
    return value;
  };

  it('resolves on the ready line, collects both streams, waits for later lines', async () => {
    const child = track(
      await startProcess({
        command: node,
        args: [
          '-e',
          `console.error('warming up'); console.log('listening on ' + process.env.GREETING);
           setTimeout(() => console.log('later'), 100); setInterval(() => {}, 1000);`,
        ],
        env: { GREETING: 'port 1234' },
        readyPattern: /listening on (.+)/,
        timeoutMs: 5_000,
      }),
    );
    expect(child.ready?.[1]).toBe('port 1234');
    expect(child.stderr).toContain('warming up');
    expect((await child.waitFor(/later/, 2_000))[0]).toBe('later');
    expect(child.stdout).toEqual(['listening on port 1234', 'later']);
    expect(child.running).toBe(true);
    const exit = await child.stop();
    expect(exit.signal).toBe('SIGTERM');
    expect(child.running).toBe(false);
  });

  it('rejects with the output when the child exits before it is ready', async () => {
    const error = await startProcess({
      command: node,
      args: ['-e', `console.log('boom: bad config'); process.exit(3)`],
      readyPattern: /ready/,
      timeoutMs: 5_000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProcessStartError);
    expect((error as ProcessStartError).output).toContain('boom: bad config');
    expect((error as ProcessStartError).message).toMatch(/code 3/);
  });

  it('kills a child that never gets ready, within its time bound', async () => {
    const started = Date.now();
    const error = await startProcess({
      command: node,
      args: ['-e', `setInterval(() => {}, 1000)`],
      readyPattern: /ready/,
      timeoutMs: 300,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProcessStartError);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('stop() escalates to SIGKILL when SIGTERM is ignored, and kills the whole process group', async () => {
    const child = track(
      await startProcess({
        command: node,
        args: [
          '-e',
          `process.on('SIGTERM', () => {});
           const { spawn } = require('node:child_process');
           const grandchild = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
           console.log('grandchild ' + grandchild.pid); setInterval(() => {}, 1000);`,
        ],
        readyPattern: /grandchild (\d+)/,
      }),
    );
    const grandchild = Number(child.ready?.[1]);
    const exit = await child.stop({ graceMs: 200 });
    expect(exit.signal).toBe('SIGKILL');
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 50 && alive(grandchild); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(alive(grandchild)).toBe(false);
  });

  it('freePort gives a bindable port', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(6379);
  });

  it('starts the orders example; /healthz answers directly and through the fault proxy', async () => {
    const orders = track(await startExampleToolServer('orders'));
    expect(orders.url).toBe(`http://127.0.0.1:${orders.port}/mcp`);
    const health = await fetch(orders.healthUrl, { signal: AbortSignal.timeout(2_000) });
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });

    const proxy = track(
      await startFaultProxy({ target: { host: '127.0.0.1', port: orders.port } }),
    );
    const viaProxy = await fetch(proxy.url('/healthz'), { signal: AbortSignal.timeout(2_000) });
    expect(await viaProxy.json()).toEqual({ status: 'ok' });

    orders.process.kill('SIGKILL');
    expect((await orders.process.exited).signal).toBe('SIGKILL');
    await expect(fetch(orders.healthUrl, { signal: AbortSignal.timeout(1_000) })).rejects.toThrow();
  });
});
