// A private redis-server per test file: its own free port and its own data dir, killed with signals.
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, ProcessStartError, startProcess } from './processes.js';
import type { RunningProcess } from './processes.js';

/** The shared development Redis: never started, stopped or written by tests. */
const SHARED_REDIS_PORT = 6379;
const DEFAULT_START_TIMEOUT_MS = 10_000;

/** Options of {@link startRedisServer}. */
export interface StartRedisOptions {
  /** `appendonly yes` with `appendfsync everysec` (survives `kill -9`); default false. */
  appendonly?: boolean;
  /** Bound on start-up (process ready and PING answered); default 10 s. */
  timeoutMs?: number;
  /** The `redis-server` binary; default from `PATH`. */
  command?: string;
}

/** A redis-server child process. */
export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** The data dir (removed by {@link stop}). */
  readonly dir: string;
  /** The current redis-server process (a new one after {@link restart}). */
  readonly process: RunningProcess;
  /**
   * Signal the server (default `SIGKILL`, i.e. `kill -9`). Resolves once it has exited, except for
   * `SIGSTOP`/`SIGCONT`, which resolve at once.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Start again on the same port and dir (stopping it first if running); resolves when PING answers. */
  restart(): Promise<void>;
  /** Stop the server and remove its dir. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Start `redis-server` on a free port with its own temporary dir, and wait until PING answers.
 *
 * @example
 * const redis = await startRedisServer({ appendonly: true });
 * await redisCommand(redis.port, ['SET', 'k', 'v']);
 * await redis.kill(); // kill -9
 * await redis.restart();
 * await redis.stop();
 */
export async function startRedisServer(options: StartRedisOptions = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'keel-e2e-redis-'));
  const timeoutMs = options.timeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const command = options.command ?? 'redis-server';

  const launch = async (port: number): Promise<RunningProcess> => {
    const child = await startProcess({
      command,
      args: [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        options.appendonly ? 'yes' : 'no',
        '--appendfsync',
        'everysec',
        '--dir',
        dir,
        '--daemonize',
        'no',
        '--logfile',
        '',
      ],
      cwd: dir,
      readyPattern: /Ready to accept connections/,
      timeoutMs,
    });
    try {
      await waitForPing(port, timeoutMs);
    } catch (error) {
      await child.stop({ graceMs: 500 });
      throw error;
    }
    return child;
  };

  let port = 0;
  let child: RunningProcess | undefined;
  try {
    // The free port can be taken between the probe and redis binding it: try a few.
    for (let attempt = 1; attempt <= 3 && !child; attempt++) {
      port = await freePort();
      if (port === SHARED_REDIS_PORT) continue;
      try {
        child = await launch(port);
      } catch (error) {
        const inUse =
          error instanceof ProcessStartError &&
          error.output.some((line) => /address already in use/i.test(line));
        if (!inUse || attempt === 3) throw error;
      }
    }
    if (!child) throw new Error('could not find a free port for redis-server');
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  let current: RunningProcess = child;
  let stopped = false;

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    current.kill(signal);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') return;
    await current.exited;
  };

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get process() {
      return current;
    },
    kill,
    async restart() {
      if (stopped) throw new Error('redis-server was stopped');
      if (current.running) await current.stop();
      current = await launch(port);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await current.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Poll PING every 50 ms until `+PONG` (not `-LOADING`), at most `timeoutMs`. */
export async function waitForPing(
  port: number,
  timeoutMs = DEFAULT_START_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if ((await redisCommand(port, ['PING'], { timeoutMs: 500 })) === 'PONG') return;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis on port ${port} did not answer PING within ${timeoutMs} ms`, {
    cause: last,
  });
}

/** A RESP reply: simple string, integer, bulk string, null, or an array of them. */
export type RedisReply = string | number | null | RedisReply[];

/** An error reply (`-ERR ...`) from Redis. */
export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError';
}

/**
 * Send one command on a fresh connection and read its reply: a tiny RESP client so tests can
 * check a server without a client library (and without its reconnects and retries).
 *
 * @example
 * await redisCommand(6380, ['SET', 'k', 'v']); // 'OK'
 */
export function redisCommand(
  port: number,
  args: readonly string[],
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<RedisReply> {
  return new Promise<RedisReply>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (error: unknown, reply?: RedisReply): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (error) reject(error);
      else resolve(reply ?? null);
    };
    const onAbort = (): void => finish(options.signal?.reason);
    const timer = setTimeout(
      () => finish(new Error(`redis ${args[0]} timed out`)),
      options.timeoutMs ?? 2_000,
    );
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (error) => finish(error));
    socket.once('close', () => finish(new Error('connection closed before the reply')));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      let parsed: { reply: RedisReply; next: number } | undefined;
      try {
        parsed = parseReply(buffer, 0, 0);
      } catch (error) {
        return finish(error);
      }
      if (parsed) finish(undefined, parsed.reply);
    });
    socket.write(encodeCommand(args));
  });
}

function encodeCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
  return Buffer.from(parts.join(''));
}

const MAX_DEPTH = 8;

// undefined when the buffer does not hold a whole reply yet.
function parseReply(
  buffer: Buffer,
  offset: number,
  depth: number,
): { reply: RedisReply; next: number } | undefined {
  if (depth > MAX_DEPTH) throw new Error('RESP reply nested too deeply');
  const lineEnd = buffer.indexOf('\r\n', offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buffer[offset] ?? 0);
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { reply: line, next };
    case '-':
      throw new RedisReplyError(line);
    case ':':
      return { reply: Number(line), next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { reply: null, next };
      if (buffer.length < next + length + 2) return undefined;
      return { reply: buffer.toString('utf8', next, next + length), next: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { reply: null, next };
      const items: RedisReply[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, at, depth + 1);
        if (!item) return undefined;
        items.push(item.reply);
        at = item.next;
      }
      return { reply: items, next: at };
    }
    default:
      throw new Error(`unexpected RESP type ${JSON.stringify(type)}`);
  }
}
