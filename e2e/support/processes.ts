// Child processes for e2e tests: spawn, wait until ready, collect output, and never leak.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The repository root (`e2e/support/` is two levels down). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Lines kept per stream; older ones are dropped so a chatty child cannot grow the test's memory. */
export const MAX_LINES = 5_000;

const DEFAULT_READY_TIMEOUT_MS = 15_000;
const DEFAULT_WAIT_TIMEOUT_MS = 10_000;
const DEFAULT_STOP_GRACE_MS = 3_000;

/** Options of {@link startProcess}. */
export interface StartProcessOptions {
  command: string;
  args?: readonly string[];
  /** Added over `process.env`; a value of `undefined` removes the variable. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Resolve once a line of stdout or stderr matches; without it, resolve once spawned. */
  readyPattern?: RegExp;
  /** Bound on the wait for `readyPattern`; default 15 s. The child is killed when it passes. */
  timeoutMs?: number;
}

/** How a child ended. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running child process. */
export interface RunningProcess {
  readonly pid: number;
  /** Lines written to stdout so far (the last {@link MAX_LINES}). */
  readonly stdout: readonly string[];
  /** Lines written to stderr so far (the last {@link MAX_LINES}). */
  readonly stderr: readonly string[];
  /** The line that matched `readyPattern`, with its groups. */
  readonly ready: RegExpMatchArray | undefined;
  /** Settles when the child has exited (never rejects). */
  readonly exited: Promise<ProcessExit>;
  /** Whether the child is still running. */
  readonly running: boolean;
  /**
   * Resolve with the first line of stdout or stderr that matches (lines already seen count
   * unless `pastLines` is false); reject after `timeoutMs` or when the child exits first.
   */
  waitFor(
    pattern: RegExp,
    timeoutMs?: number,
    options?: { pastLines?: boolean },
  ): Promise<RegExpMatchArray>;
  /**
   * Send a signal to the child's process group (default `SIGKILL`); does not wait. `SIGSTOP` and
   * `SIGCONT` freeze and thaw it. Await {@link exited} to see it go.
   */
  kill(signal?: NodeJS.Signals): void;
  /** `SIGTERM` (and `SIGCONT`, in case it is stopped), `SIGKILL` after `graceMs`; resolves on exit. */
  stop(options?: { graceMs?: number }): Promise<ProcessExit>;
}

/** Thrown when a child does not become ready; carries the tail of its output. */
export class ProcessStartError extends Error {
  override readonly name = 'ProcessStartError';
  constructor(
    message: string,
    readonly output: readonly string[],
  ) {
    super(`${message}\n--- last output ---\n${output.slice(-20).join('\n')}`);
  }
}

// Every child still running, so the exit hook can kill them if a test forgets (or crashes).
const live = new Set<ChildProcess>();
let hooksInstalled = false;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // Children are group leaders (detached): the group also holds anything they spawned.
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function killAllNow(): void {
  for (const child of live) killGroup(child, 'SIGKILL');
  live.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  // Children run in their own process groups, so a Ctrl-C or a SIGTERM to the test runner does
  // not reach them: kill them, then let the signal do what it would have done.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllNow();
      process.removeListener(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/**
 * Spawn a child and wait until it prints a line matching `readyPattern`.
 *
 * @example
 * const child = await startProcess({
 *   command: process.execPath,
 *   args: ['-e', 'console.log("ready"); setInterval(() => {}, 1000)'],
 *   readyPattern: /ready/,
 * });
 * await child.stop();
 */
export async function startProcess(options: StartProcessOptions): Promise<RunningProcess> {
  installExitHooks();
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries({ ...process.env, ...options.env })) {
    if (value !== undefined) env[key] = value;
  }
  const child = spawn(options.command, options.args ?? [], {
    cwd: options.cwd ?? REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);

  const stdout: string[] = [];
  const stderr: string[] = [];
  const all: string[] = [];
  type Waiter = { pattern: RegExp; onLine: (m: RegExpMatchArray) => void };
  const waiters = new Set<Waiter>();
  const exitListeners = new Set<(exit: ProcessExit) => void>();
  let exit: ProcessExit | undefined;

  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      live.delete(child);
      for (const listener of exitListeners) listener(exit);
      exitListeners.clear();
      resolve(exit);
    });
  });
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (error) => {
      live.delete(child);
      reject(error);
    });
  });

  const push = (target: string[], line: string): void => {
    target.push(line);
    if (target.length > MAX_LINES) target.shift();
  };
  const collect = (stream: NodeJS.ReadableStream, target: string[]): void => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => {
      const parts = (partial + text).split('\n');
      partial = parts.pop() ?? '';
      for (const raw of parts) {
        const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
        push(target, line);
        push(all, line);
        for (const waiter of [...waiters]) {
          const match = line.match(waiter.pattern);
          if (match) waiter.onLine(match);
        }
      }
      // A line that never ends must not grow without bound either.
      if (partial.length > 1_000_000) partial = partial.slice(-1_000_000);
    });
  };
  collect(child.stdout!, stdout);
  collect(child.stderr!, stderr);

  function waitFor(
    pattern: RegExp,
    timeoutMs = DEFAULT_WAIT_TIMEOUT_MS,
    waitOptions: { pastLines?: boolean } = {},
  ): Promise<RegExpMatchArray> {
    if (waitOptions.pastLines !== false) {
      for (const line of all) {
        const match = line.match(pattern);
        if (match) return Promise.resolve(match);
      }
    }
    return new Promise<RegExpMatchArray>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(waiter);
        exitListeners.delete(onExit);
      };
      const waiter: Waiter = {
        pattern,
        onLine: (match) => {
          done();
          resolve(match);
        },
      };
      const onExit = (how: ProcessExit): void => {
        done();
        reject(
          new ProcessStartError(
            `${options.command} exited (code ${how.code}, signal ${how.signal}) before printing ${pattern}`,
            all,
          ),
        );
      };
      const timer = setTimeout(() => {
        done();
        reject(new ProcessStartError(`no line matched ${pattern} within ${timeoutMs} ms`, all));
      }, timeoutMs);
      if (exit) return onExit(exit);
      waiters.add(waiter);
      exitListeners.add(onExit);
    });
  }

  function kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    killGroup(child, signal);
  }

  async function stop(stopOptions: { graceMs?: number } = {}): Promise<ProcessExit> {
    if (exit) return exit;
    kill('SIGTERM');
    kill('SIGCONT');
    const timer = setTimeout(() => kill('SIGKILL'), stopOptions.graceMs ?? DEFAULT_STOP_GRACE_MS);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  await spawned;
  let ready: RegExpMatchArray | undefined;
  if (options.readyPattern) {
    try {
      ready = await waitFor(options.readyPattern, options.timeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
    } catch (error) {
      await stop({ graceMs: 500 });
      throw error;
    }
  }

  return {
    pid: child.pid!,
    stdout,
    stderr,
    ready,
    exited,
    get running() {
      return exit === undefined;
    },
    waitFor,
    kill,
    stop,
  };
}

/** A TCP port on 127.0.0.1 that was free a moment ago (another process may still take it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** The example tool servers under `examples/`. */
export type ExampleName = 'orders' | 'knowledge-base' | 'express-mount';

/** A running example tool server. */
export interface ExampleToolServer {
  /** The MCP endpoint, e.g. `http://127.0.0.1:41234/mcp` (`/keel/mcp` for express-mount). */
  url: string;
  /** `http://127.0.0.1:<port>`. */
  origin: string;
  port: number;
  /** The liveness endpoint beside the MCP endpoint. */
  healthUrl: string;
  process: RunningProcess;
  stop(): Promise<ProcessExit>;
}

// What each example's main.ts prints once it listens; the last URL on the line is its MCP URL.
const EXAMPLE_READY: Record<ExampleName, RegExp> = {
  orders: /orders tool server at (http:\/\/\S+)/,
  'knowledge-base': /knowledge-base tool server at (http:\/\/\S+)/,
  'express-mount': /MCP at (http:\/\/\S+)/,
};

/**
 * Start `examples/<name>/src/main.ts` (TypeScript through tsx) and wait until it listens.
 * `env` is added over `process.env` (e.g. `REDIS_URL`, `KEEL_JWKS_URL`, `KEEL_ISSUER`,
 * `ORDERS_DB`); `PORT` defaults to a free port and `HOST` to 127.0.0.1.
 *
 * @example
 * const orders = await startExampleToolServer('orders');
 * await fetch(orders.healthUrl);
 * await orders.stop();
 */
export async function startExampleToolServer(
  name: ExampleName,
  env: Record<string, string | undefined> = {},
  options: { timeoutMs?: number } = {},
): Promise<ExampleToolServer> {
  const attempts = env.PORT === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    // express-mount prints the PORT it was given, so 0 would print a wrong URL: pick one here.
    const port = env.PORT ?? String(await freePort());
    try {
      // `node --import tsx`, not the tsx CLI: the CLI runs the program in a grandchild, so the
      // pid we hold (and a SIGKILL or SIGSTOP sent to it) would miss the server.
      const child = await startProcess({
        command: process.execPath,
        args: ['--import', 'tsx', `examples/${name}/src/main.ts`],
        cwd: REPO_ROOT,
        env: { HOST: '127.0.0.1', ...env, PORT: port },
        readyPattern: EXAMPLE_READY[name],
        timeoutMs: options.timeoutMs ?? 20_000,
      });
      const url = new URL(child.ready![1]!);
      const mountPath = url.pathname.replace(/\/mcp$/, '');
      return {
        url: url.href,
        origin: url.origin,
        port: Number(url.port),
        healthUrl: `${url.origin}${mountPath}/healthz`,
        process: child,
        stop: () => child.stop(),
      };
    } catch (error) {
      const inUse =
        error instanceof ProcessStartError && error.output.some((l) => l.includes('EADDRINUSE'));
      if (!inUse || attempt >= attempts) throw error;
    }
  }
}
