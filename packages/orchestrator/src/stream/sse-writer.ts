import type { UiMessageChunk } from './ui-message-chunks.js';

/** Response headers of a UI message stream (AI SDK v1) served as server-sent events. */
export const UI_MESSAGE_STREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-vercel-ai-ui-message-stream': 'v1',
  // Stops nginx-style proxies from buffering the stream.
  'x-accel-buffering': 'no',
});

export const DEFAULT_HEARTBEAT_MS = 15_000;

/** The SSE comment sent while idle; clients ignore comments, proxies see traffic. */
export const HEARTBEAT_FRAME = ': ping\n\n'; // DESIGN.md section 6
export const DONE_FRAME = 'data: [DONE]\n\n';

type IntervalHandle = unknown;

export interface SseWriterOptions {
  /** Sink for frames (e.g. `res.write`). */
  write(text: string): void;
  /** Clock in ms; defaults to `Date.now`. */
  now?: () => number;
  /** A heartbeat is written when nothing was written for this long. Default 15000; 0 disables. */
  heartbeatMs?: number;
  setInterval?: (fn: () => void, ms: number) => IntervalHandle;
  clearInterval?: (handle: IntervalHandle) => void;
}

export interface SseWriter {
  /** Writes `id: <id>\ndata: <json>\n\n`. */
  chunk(chunk: UiMessageChunk, id: string): void;
  /** Writes a chunk already serialised as JSON (a replayed stream entry), same frame. */
  raw(json: string, id: string): void;
  /** Writes `data: [DONE]\n\n` and stops heartbeats. Further calls are no-ops. */
  done(): void;
  /** Stops heartbeats without writing `[DONE]` (the connection went away). */
  close(): void;
  readonly closed: boolean;
}

/** Formats one chunk as an SSE event. An id with a newline would split the frame, so it throws. */
export function formatSseChunk(chunk: UiMessageChunk, id: string): string {
  if (/[\r\n]/.test(id)) throw new TypeError('SSE event id must not contain a line break');
  // JSON.stringify escapes newlines inside strings, so the data stays on one line.
  return `id: ${id}\ndata: ${JSON.stringify(chunk)}\n\n`;
}

/**
 * Writes UI message stream chunks as SSE frames, with heartbeat comments while idle.
 *
 * @example
 * ```ts
 * const out: string[] = [];
 * const sse = createSseWriter({ write: (t) => out.push(t) });
 * sse.chunk({ type: 'start' }, '1-0');
 * sse.done();
 * ```
 */
export function createSseWriter(options: SseWriterOptions): SseWriter {
  const now = options.now ?? Date.now;
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const setIntervalFn = options.setInterval ?? ((fn, ms) => setInterval(fn, ms));
  const clearIntervalFn =
    options.clearInterval ?? ((handle) => clearInterval(handle as ReturnType<typeof setInterval>));

  let closed = false;
  let lastWriteAt = now();
  let timer: IntervalHandle | undefined;

  const write = (text: string): void => {
    lastWriteAt = now();
    options.write(text);
  };

  const stop = (): void => {
    closed = true;
    if (timer !== undefined) {
      clearIntervalFn(timer);
      timer = undefined;
    }
  };

  if (heartbeatMs > 0) {
    timer = setIntervalFn(() => {
      if (closed) return;
      if (now() - lastWriteAt >= heartbeatMs) write(HEARTBEAT_FRAME);
    }, heartbeatMs);
    // A pending heartbeat must not keep a Node process alive on its own.
    (timer as { unref?: () => void } | undefined)?.unref?.();
  }

  return {
    chunk(chunk, id) {
      if (closed) throw new Error('SSE writer is closed');
      write(formatSseChunk(chunk, id));
    },
    raw(json, id) {
      if (closed) throw new Error('SSE writer is closed');
      if (/[\r\n]/.test(id) || /[\r\n]/.test(json)) {
        throw new TypeError('SSE event id and data must not contain a line break');
      }
      write(`id: ${id}\ndata: ${json}\n\n`);
    },
    done() {
      if (closed) return;
      stop();
      options.write(DONE_FRAME);
    },
    close() {
      stop();
    },
    get closed() {
      return closed;
    },
  };
}
