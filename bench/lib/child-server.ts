/** Start a server script in its own (optionally CPU-pinned) child process. */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

export interface ChildServer {
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** True when `taskset` exists and the machine has at least two cores. */
export function canPin(cpus: number): boolean {
  return cpus >= 2 && spawnSync('taskset', ['-V']).status === 0;
}

/** Pin this process to a core (best effort). */
export function pinSelf(core: number): void {
  spawnSync('taskset', ['-cp', String(core), String(process.pid)], { stdio: 'ignore' });
}

export function startServer(
  script: string,
  env: Record<string, string>,
  pinCore: number | undefined,
): Promise<ChildServer> {
  const nodeArgs = ['--import', 'tsx', script];
  const child =
    pinCore === undefined
      ? spawn(process.execPath, nodeArgs, { env: { ...process.env, ...env } })
      : spawn('taskset', ['-c', String(pinCore), process.execPath, ...nodeArgs], {
          env: { ...process.env, ...env },
        });
  child.stderr?.pipe(process.stderr);
  return new Promise((resolve, reject) => {
    let out = '';
    const onExit = (code: number | null) => reject(new Error(`${script} exited early (${code})`));
    child.once('exit', onExit);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /READY (\d+)/.exec(out);
      if (!match) return;
      child.off('exit', onExit);
      child.stdout?.removeAllListeners('data');
      child.stdout?.resume();
      resolve({
        port: Number(match[1]),
        child,
        stop: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null) return done();
            const t = setTimeout(() => child.kill('SIGKILL'), 3_000);
            child.once('exit', () => {
              clearTimeout(t);
              done();
            });
            child.kill('SIGTERM');
          }),
      });
    });
  });
}
