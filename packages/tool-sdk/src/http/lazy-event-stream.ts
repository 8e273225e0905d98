/**
 * A reply to one JSON-RPC request that is plain JSON unless a notification has to go out
 * first; then it turns into an SSE stream carrying the notifications and, last, the reply.
 * Stateless Streamable HTTP servers answer fast calls with one JSON body this way, and still
 * deliver progress and log notifications for slow ones.
 */

import { textResponse } from './node-adapter.js';

const JSON_HEADERS = { 'content-type': 'application/json' };

/** The reply being built. */
export interface LazyEventStreamReply {
  /** Resolves with the `Response` as soon as its shape is known. */
  readonly response: Promise<Response>;
  /** Send a notification; dropped when the client does not accept `text/event-stream`. */
  notify(method: string, params: Record<string, unknown>): void;
  /** Send the final JSON-RPC message (result or error) and end the reply. */
  finish(message: unknown): void;
}

/** Start a reply; `acceptsSse` comes from the request's `Accept` header. */
export function createLazyEventStreamReply(acceptsSse: boolean): LazyEventStreamReply {
  const encoder = new TextEncoder();
  let stream: ReadableStreamDefaultController<Uint8Array> | undefined;
  let settle!: (response: Response) => void;
  let finished = false;
  const response = new Promise<Response>((resolve) => (settle = resolve));
  const frame = (message: unknown) =>
    encoder.encode(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
  return {
    response,
    notify(method, params) {
      if (!acceptsSse || finished) return;
      if (!stream) {
        const body = new ReadableStream<Uint8Array>({ start: (c) => void (stream = c) });
        settle(
          new Response(body, {
            headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
          }),
        );
      }
      try {
        stream!.enqueue(frame({ jsonrpc: '2.0', method, params }));
      } catch {
        // The client went away; the call itself goes on.
      }
    },
    finish(message) {
      if (finished) return;
      finished = true;
      if (!stream) {
        settle(textResponse(JSON.stringify(message), { headers: JSON_HEADERS }));
        return;
      }
      try {
        stream.enqueue(frame(message));
        stream.close();
      } catch {
        // Already closed by the client.
      }
    },
  };
}

/** Whether an `Accept` header takes an SSE reply. */
export function acceptsEventStream(headers: Headers): boolean {
  return (headers.get('accept') ?? '').includes('text/event-stream');
}
