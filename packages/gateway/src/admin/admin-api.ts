/**
 * The admin HTTP API, a fetch-style handler served under `/admin`:
 *
 * | method and path | answer |
 * |---|---|
 * | `GET /admin/servers` | 200 `{ servers: [{ source: 'config' \| 'admin', server }] }` |
 * | `GET /admin/servers/:id` | 200 `{ source, server }`; 404 |
 * | `PUT /admin/servers/:id` | body: a server (its `id`, when given, must be `:id`); 201 registered, 200 updated, `{ source: 'admin', server }`; 400 with the field; 409 for a config-file server |
 * | `DELETE /admin/servers/:id` | 204; 404; 409 for a config-file server |
 * | `GET /admin/tools/held` | 200 `{ held: [...] }`: changed tool definitions waiting for approval |
 * | `POST /admin/tools/:exposed/approve` | 200 `{ approved: exposed }`; 404 when nothing is held under that name |
 *
 * Every request needs `Authorization: Bearer <admin key>` (401 otherwise, compared in constant
 * time); with no admin key configured every request is 403: the API is disabled. Error bodies
 * are `{ "error": KeelError }` (DESIGN.md section 3) with a correlation id, never a stack.
 * Bodies over 64 KiB are refused with 413.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { KeelError } from '@keel/tool-sdk/contract';
import { BodyTooLargeError, parseStrictJson, readBody } from '@keel/tool-sdk/http';
import type { ServerConfig } from '../config/gateway-config.js';
import { GatewayError } from '../errors/gateway-error.js';
import type { ServerRegistry } from '../registry/server-registry.js';

/** A changed tool definition held until an admin approves it. */
export interface HeldToolView {
  exposed: string;
  serverId: string;
  tool: string;
  oldHash?: string;
  newHash: string;
}

/** Options of {@link createAdminApi}. */
export interface AdminApiOptions {
  registry: Pick<ServerRegistry, 'list' | 'get' | 'isStatic' | 'register' | 'deregister'>;
  catalog: {
    held(): HeldToolView[];
    approve(exposed: string): Promise<boolean>;
  };
  /** The admin bearer token; `undefined` or empty disables the API (every request 403). */
  adminKey: string | undefined;
  /** Correlation ids of error answers and log lines. */
  newId: () => string;
  /** Body cap in bytes; default 64 KiB. */
  maxBodyBytes?: number;
  /** Receives one audit line per change (never the admin key). */
  logger?: Pick<Logger, 'info' | 'warn'>;
}

/** Handles one admin request; `path` is the request path (e.g. `/admin/servers`). */
export type AdminApi = (request: Request, path: string) => Promise<Response>;

/** Default body cap of the admin API. */
export const ADMIN_MAX_BODY_BYTES = 64 * 1024;

const STATUS: Record<string, number> = {
  INVALID_INPUT: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  LIMIT_EXCEEDED: 413,
  UNAVAILABLE: 503,
};

/** An error answer: its status beside the KeelError. */
class AdminError extends GatewayError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    details?: unknown,
  ) {
    super(code, message, details === undefined ? {} : { details });
  }
}

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/**
 * Make the admin API handler.
 *
 * @example
 * ```ts
 * import { randomUUID } from 'node:crypto';
 * import { createAdminApi } from './admin-api.js';
 * import { createServerRegistry } from '../registry/server-registry.js';
 *
 * const admin = createAdminApi({
 *   registry: createServerRegistry({ staticServers: [] }),
 *   catalog: { held: () => [], approve: async () => false },
 *   adminKey: process.env.KEEL_ADMIN_KEY,
 *   newId: randomUUID,
 * });
 * const response = await admin(
 *   new Request('http://gw.local/admin/servers', { headers: { authorization: 'Bearer s3cret' } }),
 *   '/admin/servers',
 * );
 * ```
 */
export function createAdminApi(options: AdminApiOptions): AdminApi {
  const { registry, catalog, logger } = options;
  const maxBodyBytes = options.maxBodyBytes ?? ADMIN_MAX_BODY_BYTES;
  // Hash both sides so the compare takes the same time whatever the presented length.
  const expected = options.adminKey ? digest(options.adminKey) : undefined;

  function authenticate(request: Request): void {
    if (!expected) {
      throw new AdminError(403, 'FORBIDDEN', 'The admin API is disabled (no admin key configured)');
    }
    const header = request.headers.get('authorization') ?? '';
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    const presented = digest(match?.[1] ?? '');
    const ok = timingSafeEqual(presented, expected) && match !== null;
    if (!ok) {
      throw new AdminError(401, 'UNAUTHENTICATED', 'A valid admin bearer token is required', {
        'www-authenticate': 'Bearer',
      });
    }
  }

  async function readJson(request: Request): Promise<unknown> {
    const length = Number(request.headers.get('content-length') ?? NaN);
    if (Number.isFinite(length) && length > maxBodyBytes) {
      await request.body?.cancel().catch(() => undefined);
      throw tooLarge();
    }
    let text: string;
    try {
      const body = request.body
        ? (await readBody(request.body, maxBodyBytes)).bytes
        : Buffer.alloc(0);
      text = body.toString('utf8');
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        await request.body?.cancel().catch(() => undefined);
        throw tooLarge();
      }
      throw new AdminError(400, 'INVALID_INPUT', 'The request body could not be read');
    }
    const parsed = parseStrictJson(text);
    if (!parsed.ok) throw new AdminError(400, 'INVALID_INPUT', parsed.message);
    return parsed.value;
  }

  function tooLarge(): AdminError {
    return new AdminError(413, 'LIMIT_EXCEEDED', `The request body exceeds ${maxBodyBytes} bytes`);
  }

  const view = (server: ServerConfig) => ({
    source: registry.isStatic(server.id) ? 'config' : 'admin',
    server,
  });

  async function putServer(request: Request, id: string): Promise<Response> {
    const body = await readJson(request);
    let input = body;
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
      const given = (body as Record<string, unknown>).id;
      if (given === undefined) input = { ...body, id };
      else if (given !== id) {
        throw new AdminError(
          400,
          'INVALID_INPUT',
          `Invalid server: id: "${String(given)}" does not match the path id "${id}"`,
          {},
          { issues: [{ path: 'id', message: 'must match the id in the path' }] },
        );
      }
    }
    const existed = registry.get(id) !== undefined;
    const server = await registry.register(input);
    logger?.info(
      { audit: existed ? 'server-updated' : 'server-registered', server: id },
      `admin: ${existed ? 'updated' : 'registered'} server ${id}`,
    );
    return Response.json({ source: 'admin', server }, { status: existed ? 200 : 201 });
  }

  async function route(request: Request, path: string): Promise<Response> {
    const segments = path
      .replace(/^\/admin\/?/, '')
      .split('/')
      .filter((s) => s !== '');
    let parts: string[];
    try {
      parts = segments.map((s) => decodeURIComponent(s));
    } catch {
      throw new AdminError(400, 'INVALID_INPUT', 'The path is not valid percent-encoding');
    }
    const method = request.method.toUpperCase();
    const [first, second, third, ...rest] = parts;

    if (first === 'servers' && second === undefined) {
      allow(method, ['GET']);
      return Response.json({ servers: registry.list().map(view) });
    }
    if (first === 'servers' && second !== undefined && third === undefined) {
      allow(method, ['GET', 'PUT', 'DELETE']);
      if (method === 'GET') {
        const server = registry.get(second);
        if (!server) throw notFound(`No server "${second}"`);
        return Response.json(view(server));
      }
      if (method === 'PUT') return putServer(request, second);
      if (!(await registry.deregister(second))) throw notFound(`No server "${second}"`);
      logger?.info(
        { audit: 'server-deregistered', server: second },
        `admin: deregistered server ${second}`,
      );
      return new Response(null, { status: 204 });
    }
    if (first === 'tools' && second === 'held' && third === undefined) {
      allow(method, ['GET']);
      return Response.json({ held: catalog.held() });
    }
    if (first === 'tools' && second !== undefined && third === 'approve' && rest.length === 0) {
      allow(method, ['POST']);
      if (!(await catalog.approve(second))) throw notFound(`No held tool "${second}"`);
      logger?.info({ audit: 'tool-approved-by-admin', tool: second }, `admin: approved ${second}`);
      return Response.json({ approved: second });
    }
    throw notFound('No such admin resource');
  }

  return async (request, path) => {
    try {
      authenticate(request);
      return await route(request, path);
    } catch (error) {
      return errorResponse(error);
    }
  };

  function errorResponse(error: unknown): Response {
    const correlationId = options.newId();
    let status: number;
    let keel: KeelError;
    const headers: Record<string, string> = { 'x-correlation-id': correlationId };
    if (error instanceof AdminError) {
      status = error.status;
      keel = error.toKeelError(correlationId);
      Object.assign(headers, error.headers);
    } else if (GatewayError.isInstance(error) && STATUS[error.code] !== undefined) {
      status = STATUS[error.code]!;
      keel = error.toKeelError(correlationId);
      if (error.code === 'UNAVAILABLE') headers['retry-after'] = '1';
    } else {
      status = 500;
      keel = { code: 'INTERNAL', message: 'Internal error', retryable: false, correlationId };
      logger?.warn({ err: error, correlationId }, 'admin request failed');
    }
    return Response.json({ error: keel }, { status, headers });
  }
}

function allow(method: string, methods: readonly string[]): void {
  if (methods.includes(method)) return;
  throw new AdminError(405, 'NOT_FOUND', `Method ${method} is not allowed here`, {
    allow: methods.join(', '),
  });
}

function notFound(message: string): AdminError {
  return new AdminError(404, 'NOT_FOUND', message);
}
