/**
 * The gateway's MCP client towards tool servers: one JSON-RPC request per HTTP POST over
 * Streamable HTTP, with JSON or SSE replies, per-request credentials, sessions for stateful
 * upstreams, and an exact account of whether a failed request may have reached the upstream.
 */
import http from 'node:http';
import https from 'node:https';
import { GatewayError } from '../errors/gateway-error.js';
import type { Delivery } from '../errors/gateway-error.js';
import { createSseParser } from './sse-parser.js';

/** The MCP revision the gateway speaks upstream (DESIGN.md section 4). */
export const UPSTREAM_PROTOCOL_VERSION = '2025-11-25';

/** A JSON-RPC request sent upstream (the client assigns the id). */
export interface UpstreamMessage {
  method: string;
  params?: Record<string, unknown>;
}

/** A notification the upstream sent while answering (progress, logging). */
export interface UpstreamNotification {
  method: string;
  params?: Record<string, unknown>;
}

/** What the upstream answered: a result, or a JSON-RPC error to relay as is. */
export type UpstreamReply =
  | { result: Record<string, unknown> }
  | { error: { code: number; message: string; data?: unknown } };

/** Produces the `Authorization` header value for one exact body (or none). */
export type Credentials = (
  body: Uint8Array,
  message: UpstreamMessage,
) => Promise<string | undefined> | string | undefined;

/** One request. */
export interface UpstreamRequest {
  /** The replica's MCP endpoint URL. */
  replica: string;
  message: UpstreamMessage;
  credentials: Credentials;
  signal: AbortSignal;
  onNotification?: (notification: UpstreamNotification) => void;
  /** Extra headers (e.g. `traceparent`). */
  headers?: Record<string, string>;
}

/** Options of {@link createUpstreamClient}. */
export interface UpstreamClientOptions {
  /** Cap on one reply's body; larger replies fail as INVALID_OUTPUT. Default 16 MiB. */
  maxResponseBytes?: number;
  /** Client name sent in `initialize`. */
  clientInfo?: { name: string; version: string };
  /** Idle keep-alive sockets are dropped before the server's own 5 s timeout would race us. */
  idleSocketMs?: number;
  maxSockets?: number;
}

/** The client. */
export interface UpstreamClient {
  /** Send one request; resolves with the reply or throws a {@link GatewayError} with its delivery. */
  request(request: UpstreamRequest): Promise<UpstreamReply>;
  /** Forget a replica's session (it will initialize again on next use). */
  forget(replica: string): void;
  close(): void;
}

interface Session {
  sessionId: string | undefined;
  protocolVersion: string;
}

class SessionExpired extends Error {}

/** Create a client. One per gateway process; sessions are per replica URL. */
export function createUpstreamClient(options: UpstreamClientOptions = {}): UpstreamClient {
  const maxResponseBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
  const clientInfo = options.clientInfo ?? { name: 'keel-gateway', version: '0.1.0' };
  const agentOptions = {
    keepAlive: true,
    timeout: options.idleSocketMs ?? 4_000,
    maxSockets: options.maxSockets ?? 256,
  };
  const httpAgent = new http.Agent(agentOptions);
  const httpsAgent = new https.Agent(agentOptions);
  const sessions = new Map<string, Promise<Session>>();
  // Parsed once per replica, not per request.
  interface Target {
    secure: boolean;
    options: { protocol: string; hostname: string; port: string | number; path: string };
  }
  const targets = new Map<string, Target>();
  const targetOf = (replica: string): Target => {
    const known = targets.get(replica);
    if (known) return known;
    const url = new URL(replica);
    const secure = url.protocol === 'https:';
    const target: Target = {
      secure,
      options: {
        protocol: url.protocol,
        // URL keeps IPv6 brackets; http.request wants the bare address.
        hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: url.port || (secure ? 443 : 80),
        path: `${url.pathname}${url.search}`,
      },
    };
    if (targets.size > 1_000) targets.clear();
    targets.set(replica, target);
    return target;
  };
  let nextId = 1;

  function session(request: UpstreamRequest): Promise<Session> {
    let pending = sessions.get(request.replica);
    if (!pending) {
      pending = initialize(request);
      sessions.set(request.replica, pending);
      pending.catch(() => sessions.delete(request.replica));
    }
    return pending;
  }

  async function initialize(request: UpstreamRequest): Promise<Session> {
    const init = await post(request, {
      message: {
        method: 'initialize',
        params: { protocolVersion: UPSTREAM_PROTOCOL_VERSION, capabilities: {}, clientInfo },
      },
      session: undefined,
      expectReply: true,
    });
    if ('error' in init.reply) {
      throw new GatewayError('UNAVAILABLE', 'Upstream refused initialize', {
        retryable: false,
        delivery: 'yes',
        details: { upstreamError: init.reply.error.code },
      });
    }
    const version = init.reply.result.protocolVersion;
    const established: Session = {
      sessionId: init.sessionId,
      protocolVersion: typeof version === 'string' ? version : UPSTREAM_PROTOCOL_VERSION,
    };
    await post(request, {
      message: { method: 'notifications/initialized' },
      session: established,
      expectReply: false,
    });
    return established;
  }

  async function request(request: UpstreamRequest): Promise<UpstreamReply> {
    for (let round = 0; ; round++) {
      const current = await session(request);
      try {
        const { reply } = await post(request, {
          message: request.message,
          session: current,
          expectReply: true,
        });
        return reply;
      } catch (error) {
        // 404 on a session: the upstream forgot it (restart, expiry). Initialize again, once.
        if (error instanceof SessionExpired && round === 0) {
          if (sessions.get(request.replica) !== undefined) sessions.delete(request.replica);
          continue;
        }
        if (error instanceof SessionExpired) {
          throw new GatewayError('UNAVAILABLE', 'Upstream session could not be renewed', {
            delivery: 'no',
          });
        }
        throw error;
      }
    }
  }

  function post(
    request: UpstreamRequest,
    send: { message: UpstreamMessage; session: Session | undefined; expectReply: boolean },
  ): Promise<{ reply: UpstreamReply; sessionId: string | undefined }> {
    const id = send.expectReply ? nextId++ : undefined;
    const body = Buffer.from(
      JSON.stringify({
        jsonrpc: '2.0',
        ...(id !== undefined ? { id } : {}),
        method: send.message.method,
        ...(send.message.params !== undefined ? { params: send.message.params } : {}),
      }),
    );
    return Promise.resolve(request.credentials(body, send.message)).then(
      (authorization) =>
        new Promise((resolve, reject) => {
          const target = targetOf(request.replica);
          const headers: Record<string, string> = {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'content-length': String(body.length),
            ...request.headers,
          };
          if (authorization) headers.authorization = authorization;
          if (send.session) {
            headers['mcp-protocol-version'] = send.session.protocolVersion;
            if (send.session.sessionId) headers['mcp-session-id'] = send.session.sessionId;
          }
          const secure = target.secure;
          let delivery: Delivery = 'no';
          let settled = false;
          const fail = (error: unknown) => {
            if (settled) return;
            settled = true;
            cleanup();
            reject(error);
          };
          const succeed = (reply: UpstreamReply, sessionId: string | undefined) => {
            if (settled) return;
            settled = true;
            cleanup();
            resolve({ reply, sessionId });
          };
          const req = (secure ? https : http).request({
            ...target.options,
            method: 'POST',
            headers,
            agent: secure ? httpsAgent : httpAgent,
          });
          const onAbort = () => {
            req.destroy();
            fail(
              new GatewayError('CANCELLED', 'Upstream request aborted', {
                delivery,
                cause: request.signal.reason,
              }),
            );
          };
          const cleanup = () => request.signal.removeEventListener('abort', onAbort);
          if (request.signal.aborted) return onAbort();
          request.signal.addEventListener('abort', onAbort, { once: true });
          // Once a socket is connected, bytes of the request may reach the upstream.
          req.on('socket', (socket) => {
            if (req.reusedSocket || !socket.connecting) delivery = 'maybe';
            else socket.once('connect', () => (delivery = 'maybe'));
          });
          req.on('error', (error: NodeJS.ErrnoException) => {
            fail(
              new GatewayError('UNAVAILABLE', 'Upstream connection failed', {
                delivery,
                retryable: true,
                details: { reason: error.code ?? 'error' },
              }),
            );
          });
          req.on('response', (res) => {
            const status = res.statusCode ?? 0;
            const sessionId = headerValue(res.headers['mcp-session-id']);
            const contentType = headerValue(res.headers['content-type']) ?? '';
            const failWith = (error: unknown) => {
              res.destroy();
              fail(error);
            };
            if (!send.expectReply && status >= 200 && status < 300) {
              res.resume();
              res.on('end', () => succeed({ result: {} }, sessionId));
              return;
            }
            if (status === 404 && send.session?.sessionId) {
              res.resume();
              return fail(new SessionExpired());
            }
            const statusError = statusToError(status, res.headers['retry-after']);
            if (statusError && !contentType.includes('application/json')) {
              res.resume();
              return fail(statusError);
            }
            let size = 0;
            let text = '';
            let parser: ReturnType<typeof createSseParser> | undefined;
            const onMessage = (raw: string) => {
              let message: Record<string, unknown>;
              try {
                message = JSON.parse(raw) as Record<string, unknown>;
              } catch {
                return failWith(badReply('Upstream sent malformed JSON'));
              }
              if (message.id === id && ('result' in message || 'error' in message)) {
                res.destroy();
                return succeed(toReply(message), sessionId);
              }
              if (typeof message.method === 'string' && message.id === undefined) {
                request.onNotification?.({
                  method: message.method,
                  ...(isObject(message.params) ? { params: message.params } : {}),
                });
              }
            };
            if (contentType.includes('text/event-stream') && !statusError) {
              parser = createSseParser((event) => {
                if (event.event === 'message' && event.data.trim() !== '') onMessage(event.data);
              });
            }
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              size += Buffer.byteLength(chunk);
              if (size > maxResponseBytes) {
                return failWith(
                  new GatewayError('INVALID_OUTPUT', 'Upstream reply exceeds the size cap', {
                    delivery: 'yes',
                    details: { maxResponseBytes },
                  }),
                );
              }
              if (parser) parser.push(chunk);
              else text += chunk;
            });
            res.on('error', () =>
              fail(
                new GatewayError('UNAVAILABLE', 'Upstream reply interrupted', {
                  delivery: 'maybe',
                  retryable: true,
                }),
              ),
            );
            res.on('end', () => {
              if (parser) {
                return fail(
                  new GatewayError('UNAVAILABLE', 'Upstream stream ended without a reply', {
                    delivery: 'maybe',
                    retryable: true,
                  }),
                );
              }
              let message: unknown;
              try {
                message = JSON.parse(text);
              } catch {
                return fail(statusError ?? badReply('Upstream sent malformed JSON'));
              }
              if (isObject(message) && ('result' in message || 'error' in message)) {
                const reply = toReply(message);
                // Some servers answer an unknown session with 400 instead of the spec's 404.
                if (
                  status === 400 &&
                  send.session?.sessionId &&
                  'error' in reply &&
                  /session/i.test(reply.error.message)
                ) {
                  return fail(new SessionExpired());
                }
                // A JSON-RPC error in a 400 (bad request) is the upstream's own answer; any other
                // status says more than its body.
                if (statusError && !(status === 400 && 'error' in reply)) return fail(statusError);
                return succeed(reply, sessionId);
              }
              fail(statusError ?? badReply('Upstream reply is not JSON-RPC'));
            });
          });
          req.end(body);
        }),
    );
  }

  return {
    request,
    forget: (replica) => void sessions.delete(replica),
    close() {
      httpAgent.destroy();
      httpsAgent.destroy();
      sessions.clear();
    },
  };
}

function statusToError(
  status: number,
  retryAfter: string | string[] | undefined,
): GatewayError | undefined {
  if (status >= 200 && status < 300) return undefined;
  const seconds = Number(headerValue(retryAfter));
  const retryAfterMs = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined;
  const timing = retryAfterMs !== undefined ? { retryAfterMs } : {};
  const details = { upstreamStatus: status };
  if (status === 429)
    return new GatewayError('RATE_LIMITED', 'Upstream is rate limiting', {
      delivery: 'yes',
      details,
      ...timing,
    });
  // 503 is a refusal before any work (shutting down, store unavailable): nothing ran.
  if (status === 503)
    return new GatewayError('UNAVAILABLE', 'Upstream unavailable', {
      delivery: 'no',
      retryable: true,
      details,
      ...timing,
    });
  if (status >= 500)
    return new GatewayError('UNAVAILABLE', 'Upstream failed', {
      delivery: 'maybe',
      retryable: true,
      details,
    });
  if (status === 401 || status === 403)
    return new GatewayError('UNAVAILABLE', 'Upstream refused the gateway', {
      delivery: 'yes',
      retryable: false,
      details,
    });
  if (status === 413)
    return new GatewayError('INVALID_INPUT', 'Request too large for the upstream', {
      delivery: 'yes',
      details,
    });
  return new GatewayError('UNAVAILABLE', 'Upstream rejected the request', {
    delivery: 'yes',
    retryable: false,
    details,
  });
}

function toReply(message: Record<string, unknown>): UpstreamReply {
  if (isObject(message.error)) {
    const e = message.error;
    return {
      error: {
        code: typeof e.code === 'number' ? e.code : -32603,
        message: typeof e.message === 'string' ? e.message : 'Upstream error',
        ...(e.data !== undefined ? { data: e.data } : {}),
      },
    };
  }
  return { result: isObject(message.result) ? message.result : {} };
}

function badReply(message: string): GatewayError {
  return new GatewayError('UNAVAILABLE', message, { delivery: 'maybe', retryable: true });
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
