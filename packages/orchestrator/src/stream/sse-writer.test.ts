import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createSseWriter,
  DONE_FRAME,
  formatSseChunk,
  HEARTBEAT_FRAME,
  UI_MESSAGE_STREAM_HEADERS,
} from './sse-writer.js';

describe('createSseWriter', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function setup(heartbeatMs?: number) {
    const out: string[] = [];
    const sse = createSseWriter({
      write: (t) => out.push(t),
      ...(heartbeatMs === undefined ? {} : { heartbeatMs }),
    });
    return { out, sse };
  }

  it('frames each chunk as id + data lines and ends with [DONE], byte for byte', () => {
    const { out, sse } = setup();
    sse.chunk({ type: 'start', messageId: 'm1' }, '1700000000000-0');
    sse.chunk({ type: 'text-delta', id: 't1', delta: 'line1\nline2 "q"' }, '1700000000000-1');
    sse.done();
    expect(out.join('')).toBe(
      'id: 1700000000000-0\ndata: {"type":"start","messageId":"m1"}\n\n' +
        'id: 1700000000000-1\ndata: {"type":"text-delta","id":"t1","delta":"line1\\nline2 \\"q\\""}\n\n' +
        'data: [DONE]\n\n',
    );
    expect(DONE_FRAME).toBe('data: [DONE]\n\n');
  });

  it('raw() frames a stored JSON entry exactly like chunk() and refuses line breaks', () => {
    const { out, sse } = setup();
    sse.raw('{"type":"start-step"}', '5-1');
    expect(out.join('')).toBe('id: 5-1\ndata: {"type":"start-step"}\n\n');
    expect(() => sse.raw('{"a":\n1}', '5-2')).toThrow(TypeError);
  });

  it('writes `: ping` comments every 15 s by default while idle', () => {
    const { out, sse } = setup();
    vi.advanceTimersByTime(14_999);
    expect(out).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(out).toEqual([': ping\n\n']);
    vi.advanceTimersByTime(30_000);
    expect(out).toEqual([HEARTBEAT_FRAME, HEARTBEAT_FRAME, HEARTBEAT_FRAME]);
    sse.done();
  });

  it('skips the heartbeat when a chunk was written within the interval', () => {
    const { out, sse } = setup(1_000);
    vi.advanceTimersByTime(500);
    sse.chunk({ type: 'start-step' }, '1-0');
    vi.advanceTimersByTime(500); // tick at 1000: last write 500 ms ago
    expect(out).toEqual(['id: 1-0\ndata: {"type":"start-step"}\n\n']);
    vi.advanceTimersByTime(1_000); // tick at 2000: idle 1500 ms
    expect(out.at(-1)).toBe(HEARTBEAT_FRAME);
    sse.done();
  });

  it('done() stops heartbeats, clears the timer and is idempotent', () => {
    const { out, sse } = setup(1_000);
    sse.done();
    sse.done();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(out).toEqual([DONE_FRAME]);
    expect(sse.closed).toBe(true);
    expect(() => sse.chunk({ type: 'finish' }, '9-0')).toThrow();
  });

  it('close() stops heartbeats without writing [DONE]', () => {
    const { out, sse } = setup(1_000);
    sse.close();
    vi.advanceTimersByTime(5_000);
    expect(out).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('uses the injected clock and interval functions', () => {
    let now = 0;
    let tick: (() => void) | undefined;
    const cleared: unknown[] = [];
    const out: string[] = [];
    const sse = createSseWriter({
      write: (t) => out.push(t),
      now: () => now,
      heartbeatMs: 100,
      setInterval: (fn, ms) => {
        expect(ms).toBe(100);
        tick = fn;
        return 'handle';
      },
      clearInterval: (h) => cleared.push(h),
    });
    now = 99;
    tick?.();
    expect(out).toEqual([]);
    now = 100;
    tick?.();
    expect(out).toEqual([HEARTBEAT_FRAME]);
    sse.done();
    expect(cleared).toEqual(['handle']);
  });

  it('heartbeatMs 0 disables heartbeats', () => {
    const { out, sse } = setup(0);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(out).toEqual([]);
    sse.done();
  });
});

describe('formatSseChunk', () => {
  it('rejects an id with a line break, which would split the frame', () => {
    expect(() => formatSseChunk({ type: 'abort' }, '1\ndata: x')).toThrow(TypeError);
  });
});

describe('UI_MESSAGE_STREAM_HEADERS', () => {
  it('are the AI SDK UI message stream v1 SSE headers', () => {
    expect(UI_MESSAGE_STREAM_HEADERS).toEqual({
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-vercel-ai-ui-message-stream': 'v1',
      'x-accel-buffering': 'no',
    });
  });
});
