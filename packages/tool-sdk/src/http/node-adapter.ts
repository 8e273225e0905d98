/**
 * Node `http` ⇄ web `Request`/`Response`, for endpoints written as `(request) => Response`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { readBody, readNodeBody } from './body.js';
import type { ReadBody } from './body.js';

/** What an endpoint needs of one request, whichever server it came through. */
export interface EndpointRequest {
  method: string;
  /** Path relative to where the endpoint is mounted, without the query. */
  path: string;
  url: string;
  headers: Headers;
  /** Reads the body under the cap, hashing it as it goes. */
  readBody: () => Promise<ReadBody>;
  /** Aborted when the client goes away before the reply ends. */
  signal: AbortSignal;
}

/** An `EndpointRequest` from a web `Request` (in-process tests, edge runtimes). */
export function fromWebRequest(request: Request, maxBodyBytes: number): EndpointRequest {
  const url = new URL(request.url);
  return {
    method: request.method,
    path: url.pathname,
    url: request.url,
    headers: request.headers,
    signal: request.signal,
    readBody: () => readBody(request.body ?? emptyBody(), maxBodyBytes),
  };
}

/**
 * An `EndpointRequest` from Node's `http`. The whole request must arrive within
 * `requestTimeoutMs` (a slow-drip body gets its socket destroyed).
 */
export function fromNodeRequest(
  req: IncomingMessage,
  res: ServerResponse,
  options: { maxBodyBytes: number; requestTimeoutMs: number; basePath?: string },
): EndpointRequest {
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2)
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  const rawPath = (req.url ?? '/').split('?')[0]!;
  const basePath = options.basePath ?? '';
  const path =
    basePath && rawPath.startsWith(basePath) ? rawPath.slice(basePath.length) || '/' : rawPath;
  const timer = setTimeout(() => req.destroy(), options.requestTimeoutMs);
  // Requests that never read a body (GET, /healthz) must not leave a timer that later kills a
  // keep-alive socket.
  res.once('close', () => clearTimeout(timer));
  return {
    method: req.method ?? 'GET',
    path,
    url: `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`,
    headers,
    signal: controller.signal,
    readBody: async () => {
      try {
        // Keeps the socket open when the cap is hit, so the 413 still reaches the client.
        return await readNodeBody(req, options.maxBodyBytes);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * A `Response` whose text body is kept as a string and only turned into a web stream when a
 * web reader asks for it. {@link writeNodeResponse} writes the string in one `end()`, so the
 * Node path never builds the stream (about 12-15 µs a reply here; P2). Its body methods work
 * as usual; before handing one to code outside Keel, pass it through {@link toWebResponse}.
 */
export class TextResponse extends Response {
  readonly #text: string;
  #materialized: Response | undefined;

  constructor(text: string, init?: ResponseInit) {
    super(null, init);
    this.#text = text;
  }

  /** The body text, without consuming anything. */
  get bodyText(): string {
    return this.#text;
  }

  /** Whether a web reader has consumed the body (never materializes it). */
  isBodyUsed(): boolean {
    return this.#materialized?.bodyUsed ?? false;
  }

  /** The same reply as a plain web `Response`, made once, on first use. */
  webResponse(): Response {
    this.#materialized ??= new Response(this.#text, {
      status: this.status,
      statusText: this.statusText,
      headers: this.headers,
    });
    return this.#materialized;
  }
}

// Body readers go to the materialized reply. (Defined on the prototype: the DOM typings declare
// these as properties, which a class body may not override with methods or accessors.)
for (const method of ['text', 'json', 'arrayBuffer', 'blob', 'formData', 'bytes', 'clone']) {
  Object.defineProperty(TextResponse.prototype, method, {
    configurable: true,
    writable: true,
    value(this: TextResponse, ...args: unknown[]) {
      const web = this.webResponse() as unknown as Record<string, (...a: unknown[]) => unknown>;
      return web[method]!.apply(web, args);
    },
  });
}
Object.defineProperty(TextResponse.prototype, 'body', {
  configurable: true,
  get(this: TextResponse) {
    return this.webResponse().body;
  },
});
Object.defineProperty(TextResponse.prototype, 'bodyUsed', {
  configurable: true,
  get(this: TextResponse) {
    return this.isBodyUsed();
  },
});

/** A text reply, cheap on the Node path (see {@link TextResponse}). */
export function textResponse(text: string, init?: ResponseInit): Response {
  return new TextResponse(text, init);
}

/** A plain web `Response` for callers outside Keel (`fetch()` of servers, edge runtimes). */
export function toWebResponse(response: Response): Response {
  if (!(response instanceof TextResponse)) return response;
  return new Response(response.bodyText, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

/** Write a web `Response` to Node's `ServerResponse`, streaming its body. */
export function writeNodeResponse(response: Response, res: ServerResponse): void {
  res.statusCode = response.status;
  response.headers.forEach((value, key) => res.setHeader(key, value));
  if (response.status === 413) lingeringClose(res);
  if (response instanceof TextResponse && !response.isBodyUsed()) {
    res.end(response.bodyText);
    return;
  }
  if (!response.body) {
    res.end();
    return;
  }
  Readable.fromWeb(response.body as WebReadableStream).pipe(res);
}

/**
 * After a refused body the rest of the upload is unread: end our side once the reply is
 * written, and destroy the socket if the client has not closed it within 2 s. Closing at once
 * would reset the connection and the client could lose the 413. (No `Connection: close`
 * header either: with it Node destroys the socket as soon as the reply is written.)
 */
function lingeringClose(res: ServerResponse): void {
  const socket = res.socket;
  if (!socket) return;
  res.once('finish', () => {
    socket.end();
    const timer = setTimeout(() => socket.destroy(), 2_000);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
}

async function* emptyBody(): AsyncIterable<Uint8Array> {}
