// A TCP proxy of our own between two hops on 127.0.0.1, with faults switched at runtime
// (RELIABILITY.md, "How to inject faults here"): latency, resets, refused or closed ports, lost
// replies, hangs and slow-drip replies.
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/**
 * A fault, applied from the moment it is set (see each kind for what "applied" means).
 *
 * The proxy knows nothing of HTTP. It splits a connection into *exchanges*: an exchange starts
 * when the client sends data on a new connection, or sends data after the upstream has sent
 * something back. With HTTP/1.1 clients that do not pipeline (node:http, undici/fetch, the
 * gateway) an exchange is one request and its reply, also on a keep-alive connection, so the
 * per-call faults (`drop-reply`, `drop-reply-rate`) are decided per request. (A pipelining
 * protocol such as RESP would see several commands as one exchange.)
 */
export type Fault =
  /** Forward both ways untouched. */
  | { kind: 'none' }
  /** Hold every chunk, both ways, `ms` before forwarding it (order kept). */
  | { kind: 'latency'; ms: number }
  /** As soon as data arrives on a connection (either way), reset the client (RST) and close upstream. */
  | { kind: 'reset' }
  /** Accept new connections and reset them at once, without connecting upstream. */
  | { kind: 'refuse' }
  /**
   * Stop listening: new connections get a real `ECONNREFUSED` (as from a dead host), while open
   * ones carry on. Setting another fault listens again on the same port (await `setFault`).
   */
  | { kind: 'down' }
  /**
   * Forward the request fully; when the upstream starts replying, reset the client and swallow
   * the reply. The upstream connection stays open and is drained (up to `dropDrainMs`), so the
   * upstream sees a healthy client and finishes the call: the "reply lost after the tool ran".
   */
  | { kind: 'drop-reply' }
  /** `drop-reply` for a fraction `rate` of exchanges, decided with `random() < rate` per exchange. */
  | { kind: 'drop-reply-rate'; rate: number; random?: () => number }
  /** Accept and read, but never forward or answer; a connection that hung stays hung. */
  | { kind: 'hang' }
  /** Forward the upstream's reply one byte every `intervalMs` (the upstream is paused meanwhile). */
  | { kind: 'slow-drip'; intervalMs: number };

/** The faults that take no parameter, accepted by name. */
export type FaultName = 'none' | 'reset' | 'refuse' | 'down' | 'drop-reply' | 'hang';

/** Counters, updated live. Bytes are counted as received by the proxy. */
export interface FaultProxyStats {
  /** Client connections accepted (including refused ones). */
  connections: number;
  /** Client connections open now. */
  open: number;
  /** Bytes received from clients. */
  bytesUp: number;
  /** Bytes received from the upstream. */
  bytesDown: number;
  /** Exchanges seen (see {@link Fault}). */
  exchanges: number;
  /** Replies swallowed by `drop-reply` / `drop-reply-rate`. */
  droppedReplies: number;
}

/** Options of {@link startFaultProxy}. */
export interface FaultProxyOptions {
  /** The upstream; must be a loopback address. */
  target: { host: string; port: number };
  /** Port to listen on (127.0.0.1); default 0, any free port. */
  listenPort?: number;
  /** Fault in force at start; default `none`. */
  fault?: Fault | FaultName;
  /** How long an upstream whose reply is dropped is drained before it is closed; default 30 s. */
  dropDrainMs?: number;
}

/** A running proxy. */
export interface FaultProxy {
  readonly port: number;
  /** `http://127.0.0.1:<port><path>`. */
  url(path?: string): string;
  /** The fault in force. */
  readonly fault: Fault;
  /** Switch the fault; resolves once the listening state matches (only `down` changes it). */
  setFault(fault: Fault | FaultName): Promise<void>;
  /** Live counters. */
  readonly stats: Readonly<FaultProxyStats>;
  /** Reset every open client connection and close its upstream (e.g. to end keep-alive reuse). */
  destroyConnections(): void;
  /** Stop listening, close every connection, clear every timer. Idempotent. */
  close(): Promise<void>;
}

// Above this many bytes queued in one direction the sending socket is paused, so a slow-drip or
// high-latency link keeps memory bounded and pushes back on the sender through TCP.
const HIGH_WATER_BYTES = 64 * 1024;
const LOW_WATER_BYTES = 16 * 1024;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/**
 * Start a fault-injecting TCP proxy in front of `target`.
 *
 * @example
 * const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: 7101 } });
 * await proxy.setFault({ kind: 'latency', ms: 200 });
 * await fetch(proxy.url('/healthz'));
 * await proxy.close();
 */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const { target } = options;
  if (!LOOPBACK.has(target.host)) {
    throw new Error(`fault proxy target must be on loopback, got ${target.host}`);
  }
  const dropDrainMs = options.dropDrainMs ?? 30_000;
  let fault = normalise(options.fault ?? 'none');
  let closed = false;
  const stats: FaultProxyStats = {
    connections: 0,
    open: 0,
    bytesUp: 0,
    bytesDown: 0,
    exchanges: 0,
    droppedReplies: 0,
  };
  const connections = new Set<Connection>();

  const onConnection = (client: Socket): void => {
    stats.connections++;
    if (closed || fault.kind === 'refuse' || fault.kind === 'down') {
      client.on('error', ignore);
      client.resetAndDestroy();
      return;
    }
    const connection = new Connection(client, target, {
      fault: () => fault,
      stats,
      dropDrainMs,
      onDisposed: () => {
        connections.delete(connection);
        stats.open--;
      },
    });
    connections.add(connection);
    stats.open++;
  };

  let server: Server | undefined = await listen(options.listenPort ?? 0, onConnection);
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no TCP address');
  const port = address.port;

  const stopListening = async (): Promise<void> => {
    const current = server;
    server = undefined;
    if (current) await new Promise<void>((resolve) => current.close(() => resolve()));
  };

  return {
    port,
    url: (path = '/') => `http://127.0.0.1:${port}${path.startsWith('/') ? path : `/${path}`}`,
    get fault() {
      return fault;
    },
    async setFault(next) {
      if (closed) throw new Error('fault proxy is closed');
      fault = normalise(next);
      if (fault.kind === 'down') {
        // Not awaited: close() waits for open connections, which carry on regardless.
        void stopListening();
      } else if (!server) {
        server = await listen(port, onConnection);
      }
    },
    stats,
    destroyConnections() {
      for (const connection of [...connections]) connection.abort();
    },
    async close() {
      if (closed) return;
      closed = true;
      const stopping = stopListening();
      const open = [...connections];
      for (const connection of open) connection.destroy();
      await Promise.all([stopping, ...open.map((connection) => connection.disposed)]);
    },
  };
}

function listen(port: number, onConnection: (socket: Socket) => void): Promise<Server> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: a client's FIN is forwarded as a FIN, not turned into a close of both ways.
    const server = createServer({ allowHalfOpen: true }, onConnection);
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function normalise(fault: Fault | FaultName): Fault {
  const value: Fault = typeof fault === 'string' ? { kind: fault } : { ...fault };
  if (value.kind === 'latency' && !(value.ms >= 0)) throw new RangeError('latency ms must be >= 0');
  if (value.kind === 'slow-drip' && !(value.intervalMs >= 1)) {
    throw new RangeError('slow-drip intervalMs must be >= 1');
  }
  if (value.kind === 'drop-reply-rate' && !(value.rate >= 0 && value.rate <= 1)) {
    throw new RangeError('drop-reply-rate rate must be within [0, 1]');
  }
  return value;
}

function ignore(): void {}

interface ConnectionContext {
  fault: () => Fault;
  stats: FaultProxyStats;
  dropDrainMs: number;
  onDisposed: () => void;
}

/** One client connection and its upstream connection. */
class Connection {
  private readonly upstream: Socket;
  private readonly toUpstream: Lane;
  private readonly toClient: Lane;
  private clientClosed = false;
  private upstreamClosed = false;
  private isDisposed = false;
  private markDisposed: () => void = ignore;
  /** Settles once both sockets have closed. */
  readonly disposed = new Promise<void>((resolve) => (this.markDisposed = resolve));
  private hung = false;
  private dropping = false;
  private replyDropped = false;
  private exchangeOpen = false;
  private drainTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: Socket,
    target: { host: string; port: number },
    private readonly context: ConnectionContext,
  ) {
    // Connect at once (writes before 'connect' are buffered by node:net).
    this.upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    client.setNoDelay(true);
    this.upstream.setNoDelay(true);
    this.toUpstream = new Lane(client, this.upstream);
    this.toClient = new Lane(this.upstream, client);

    client.on('error', ignore);
    this.upstream.on('error', ignore);
    client.on('data', (chunk: Buffer) => this.fromClient(chunk));
    this.upstream.on('data', (chunk: Buffer) => this.fromUpstream(chunk));
    client.on('end', () => {
      if (!this.hung) this.toUpstream.end();
    });
    this.upstream.on('end', () => {
      if (!this.hung && !this.dropping) this.toClient.end();
    });
    client.on('close', () => this.onClientClose());
    this.upstream.on('close', (hadError: boolean) => this.onUpstreamClose(hadError));
  }

  private fromClient(chunk: Buffer): void {
    this.context.stats.bytesUp += chunk.length;
    const fault = this.context.fault();
    if (fault.kind === 'reset') return this.abort();
    if (this.hung || fault.kind === 'hang') {
      this.hung = true;
      return;
    }
    if (!this.exchangeOpen) {
      this.exchangeOpen = true;
      this.context.stats.exchanges++;
      if (
        fault.kind === 'drop-reply' ||
        (fault.kind === 'drop-reply-rate' && (fault.random ?? Math.random)() < fault.rate)
      ) {
        this.dropping = true;
      }
    }
    this.toUpstream.push(chunk, laneDelay(fault, 'up'));
  }

  private fromUpstream(chunk: Buffer): void {
    this.context.stats.bytesDown += chunk.length;
    // The client's next data starts a new exchange.
    this.exchangeOpen = false;
    if (this.dropping) {
      if (!this.replyDropped) {
        this.replyDropped = true;
        this.context.stats.droppedReplies++;
        this.resetClient();
        // Keep reading what the upstream sends, but not for ever.
        this.drainTimer = setTimeout(() => this.upstream.destroy(), this.context.dropDrainMs);
      }
      return;
    }
    const fault = this.context.fault();
    if (fault.kind === 'reset') return this.abort();
    if (this.hung || fault.kind === 'hang') {
      this.hung = true;
      return;
    }
    this.toClient.push(chunk, laneDelay(fault, 'down'));
  }

  private resetClient(): void {
    this.toClient.dispose();
    if (!this.client.destroyed) this.client.resetAndDestroy();
  }

  /** Reset the client, close the upstream. */
  abort(): void {
    this.resetClient();
    this.toUpstream.dispose();
    this.upstream.destroy();
  }

  /** Close both sides (proxy shutdown). */
  destroy(): void {
    this.toClient.dispose();
    this.toUpstream.dispose();
    this.client.destroy();
    this.upstream.destroy();
  }

  private onClientClose(): void {
    this.clientClosed = true;
    this.toClient.dispose();
    // A dropped reply keeps its upstream draining so the call completes there.
    if (!this.replyDropped) {
      this.toUpstream.dispose();
      this.upstream.destroy();
    }
    this.maybeDispose();
  }

  private onUpstreamClose(hadError: boolean): void {
    this.upstreamClosed = true;
    this.toUpstream.dispose();
    if (!this.clientClosed && (hadError || this.dropping)) this.resetClient();
    // Otherwise the upstream ended cleanly: the client lane flushes, then ends the client.
    this.maybeDispose();
  }

  private maybeDispose(): void {
    if (this.isDisposed || !this.clientClosed || !this.upstreamClosed) return;
    this.isDisposed = true;
    clearTimeout(this.drainTimer);
    this.toClient.dispose();
    this.toUpstream.dispose();
    this.context.onDisposed();
    this.markDisposed();
  }
}

interface LaneDelay {
  /** Hold the chunk this long. */
  delayMs: number;
  /** Send it one byte at a time, this far apart (0: all at once). */
  dripMs: number;
}

function laneDelay(fault: Fault, direction: 'up' | 'down'): LaneDelay {
  if (fault.kind === 'latency') return { delayMs: fault.ms, dripMs: 0 };
  if (fault.kind === 'slow-drip' && direction === 'down') {
    return { delayMs: 0, dripMs: fault.intervalMs };
  }
  return { delayMs: 0, dripMs: 0 };
}

/** One direction of a connection: an ordered queue of chunks, each with its own delay. */
class Lane {
  private queue: { data: Buffer; due: number; dripMs: number }[] = [];
  private queuedBytes = 0;
  private nextDripAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitingDrain = false;
  private pausedSource = false;
  private ending = false;
  private ended = false;
  private disposed = false;
  private readonly onDrain = (): void => {
    this.waitingDrain = false;
    this.pump();
  };

  constructor(
    private readonly source: Socket,
    private readonly destination: Socket,
  ) {}

  push(data: Buffer, delay: LaneDelay): void {
    if (this.disposed || this.ending) return;
    this.queue.push({ data, due: performance.now() + delay.delayMs, dripMs: delay.dripMs });
    this.queuedBytes += data.length;
    if (this.queuedBytes > HIGH_WATER_BYTES && !this.pausedSource) {
      this.pausedSource = true;
      this.source.pause();
    }
    this.pump();
  }

  /** Forward the source's end once everything queued is written. */
  end(): void {
    if (this.disposed) return;
    this.ending = true;
    this.pump();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.destination.off('drain', this.onDrain);
    this.queue = [];
    this.queuedBytes = 0;
  }

  private pump(): void {
    if (this.disposed || this.timer || this.waitingDrain) return;
    if (this.destination.destroyed) return this.dispose();
    // Each turn writes and drops a queued chunk, or writes one drip byte (after which the next
    // turn waits for a timer), so the loop ends within queue length + 2 turns.
    for (let turns = this.queue.length + 2; turns > 0; turns--) {
      const head = this.queue[0];
      if (!head) break;
      const now = performance.now();
      const at = head.dripMs > 0 ? Math.max(head.due, this.nextDripAt) : head.due;
      if (at > now) {
        this.timer = setTimeout(
          () => {
            this.timer = undefined;
            this.pump();
          },
          Math.ceil(at - now),
        );
        return;
      }
      let piece: Buffer;
      if (head.dripMs > 0) {
        piece = head.data.subarray(0, 1);
        head.data = head.data.subarray(1);
        this.nextDripAt = now + head.dripMs;
        if (head.data.length === 0) this.queue.shift();
      } else {
        piece = head.data;
        this.queue.shift();
      }
      this.queuedBytes -= piece.length;
      if (this.pausedSource && this.queuedBytes <= LOW_WATER_BYTES) {
        this.pausedSource = false;
        this.source.resume();
      }
      if (!this.destination.write(piece)) {
        this.waitingDrain = true;
        this.destination.once('drain', this.onDrain);
        return;
      }
    }
    if (this.queue.length > 0) {
      // Not reached by the reasoning above; never stall if it is.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, 0);
      return;
    }
    if (this.ending && !this.ended) {
      this.ended = true;
      this.destination.end();
    }
  }
}
