/**
 * The orchestrator's HTTP API (DESIGN.md section 6): sessions, turns streamed as the AI SDK UI
 * message stream, resumable streams, approvals, stop, traces, usage, health and metrics.
 */
import { randomUUID } from 'node:crypto';
import express, {
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';
import type { Authenticator, Principal } from '../auth/principal.js';
import type { AgentConfig } from '../config/agent-config.js';
import { templateVariables } from '../config/agent-config.js';
import type { SessionRecord, StoredMessage } from '../sessions/session-store.js';
import {
  createSseWriter,
  UI_MESSAGE_STREAM_HEADERS,
  type SseWriter,
} from '../stream/sse-writer.js';
import type { UiMessageChunk } from '../stream/ui-message-chunks.js';
import type { TurnEnvironment } from '../turn/turn-deps.js';
import type { PendingTurn } from '../turn/turn-runner.js';
import { httpStatusOf, keelErrorOf } from '../errors/keel-error-of.js';
import { HttpError, notFound, sendError, sendKeelError } from './http-error.js';
import type { OrchestratorMetrics } from './metrics.js';
import {
  approvalBodySchema,
  chatBodySchema,
  createSessionSchema,
  parseBody,
  SESSION_ID_PATTERN,
  userMessageSchema,
} from './request-schemas.js';
import type { TurnService } from './turn-service.js';

export interface AppOptions {
  readonly env: TurnEnvironment;
  readonly turns: TurnService;
  readonly authenticator: Authenticator;
  readonly agents: ReadonlyMap<string, AgentConfig>;
  /** The agent of sessions that `POST /v1/chat` creates for a new chat id. */
  readonly defaultAgent: string;
  readonly metrics: OrchestratorMetrics;
  /** Readiness checks (Redis, gateway). */
  ready(): Promise<Record<string, boolean>>;
  /** Request body cap. Default 1 MiB. */
  readonly bodyLimitBytes?: number;
  /** A reader that falls this far behind is disconnected; it resumes with Last-Event-ID (S35). */
  readonly maxBufferedBytes?: number;
  /**
   * A resumed stream replays its backlog as fast as the reader takes it (past `maxBufferedBytes`
   * it waits for the buffer to drain); a reader that takes nothing for this long is dropped.
   * Default 10 s.
   */
  readonly slowReaderStallMs?: number;
  readonly heartbeatMs?: number;
}

/** Resolves once `res` has drained, closed, or `ms` passed. */
function drainOf(res: Response, ms: number): Promise<'drain' | 'close' | 'timeout'> {
  return new Promise((resolve) => {
    const done = (how: 'drain' | 'close' | 'timeout'): void => {
      clearTimeout(timer);
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(how);
    };
    const onDrain = (): void => done('drain');
    const onClose = (): void => done('close');
    const timer = setTimeout(() => done('timeout'), ms);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

type Locals = { principal: Principal; correlationId: string };

function locals(res: Response): Locals {
  return res.locals as Locals;
}

/** Wraps an async route so thrown HttpErrors become structured answers. */
function route(fn: (req: Request, res: Response) => Promise<void>): RequestHandler {
  return (req, res, next) => {
    fn(req, res).catch(next);
  };
}

function toStoredUserMessage(body: unknown): StoredMessage {
  const parsed = parseBody(userMessageSchema, body);
  return {
    id: parsed.id,
    role: 'user',
    parts: parsed.parts.map((p) => ({ type: 'text', text: p.text, state: 'done' as const })),
    ...(parsed.metadata === undefined ? {} : { metadata: parsed.metadata }),
  };
}

function sessionView(session: SessionRecord) {
  return {
    id: session.id,
    agent: session.agent,
    input: session.input,
    createdAt: new Date(session.createdAt).toISOString(),
    updatedAt: new Date(session.updatedAt).toISOString(),
    messageCount: session.messageCount,
  };
}

export function createApp(options: AppOptions): express.Express {
  const { env, turns, agents, metrics } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get(
    '/readyz',
    route(async (_req, res) => {
      const checks = await options.ready();
      const ok = Object.values(checks).every(Boolean);
      res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not-ready', checks });
    }),
  );
  app.get(
    '/metrics',
    route(async (_req, res) => {
      res.setHeader('content-type', metrics.contentType);
      res.send(await metrics.render());
    }),
  );

  const v1 = express.Router();
  v1.use((req, res, next) => {
    const correlationId = randomUUID();
    res.locals.correlationId = correlationId;
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      metrics.observeRequest(req.method, req.route?.path ?? 'unmatched', res.statusCode, started);
    });
    options.authenticator.authenticate(req.headers).then(
      (principal) => {
        res.locals.principal = principal;
        next();
      },
      (error: unknown) => {
        const keel = keelErrorOf(error, correlationId) ?? {
          code: 'UNAUTHENTICATED',
          message: 'Authentication failed.',
          retryable: false,
          correlationId,
        };
        sendKeelError(res, (error as { status?: number }).status ?? httpStatusOf(keel.code), keel);
      },
    );
  });
  v1.use(express.json({ limit: options.bodyLimitBytes ?? 1024 * 1024, strict: true }));

  /** The caller's session, or 404 (missing and foreign look the same, S07). */
  const ownSession = async (req: Request, res: Response): Promise<SessionRecord> => {
    const id = String(req.params.id ?? '');
    if (!SESSION_ID_PATTERN.test(id)) throw notFound();
    const session = await env.sessions.get(id);
    const p = locals(res).principal;
    if (
      session === undefined ||
      session.owner.user !== p.user ||
      session.owner.tenant !== p.tenant
    ) {
      throw notFound();
    }
    return session;
  };

  const agentOf = (session: SessionRecord): AgentConfig => {
    const agent = agents.get(session.agent);
    if (agent === undefined) {
      throw new HttpError(
        409,
        'CONFLICT',
        `The session's agent ${session.agent} is no longer configured.`,
      );
    }
    return agent;
  };

  const createSession = async (
    principal: Principal,
    agentName: string,
    input: Record<string, string>,
    id: string,
  ): Promise<SessionRecord> => {
    const agent = agents.get(agentName);
    if (agent === undefined) {
      throw new HttpError(400, 'INVALID_INPUT', `agent: no agent named ${agentName}.`, {
        details: { path: 'agent', agents: [...agents.keys()] },
      });
    }
    const missing = templateVariables(agent.prompt).filter((v) => input[v] === undefined);
    if (missing.length > 0) {
      throw new HttpError(
        400,
        'INVALID_INPUT',
        `input: the agent's prompt needs ${missing.map((m) => `input.${m}`).join(', ')}.`,
        { details: { path: 'input', missing } },
      );
    }
    return env.sessions.create({
      id,
      agent: agentName,
      owner: { user: principal.user, tenant: principal.tenant },
      input,
    });
  };

  const maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;

  /** Answers 200 with the UI message stream headers; frames go through the returned writer. */
  const openSse = (res: Response): SseWriter => {
    res.writeHead(200, UI_MESSAGE_STREAM_HEADERS);
    res.flushHeaders();
    metrics.streamOpened();
    res.on('close', () => metrics.streamClosed());
    return createSseWriter({
      write: (text) => {
        res.write(text);
      },
      ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
    });
  };

  /** `[DONE]` and the end of the response, unless the reader is gone. */
  const endSse = (res: Response, writer: SseWriter): void => {
    if (writer.closed) return;
    writer.done();
    res.end();
  };

  /** Runs a turn and answers with its stream; the turn outlives the connection (S33). */
  const streamTurn = async (
    req: Request,
    res: Response,
    start: (
      onChunk: (chunk: UiMessageChunk, id: string) => void,
    ) => Promise<{ done: Promise<unknown> }>,
  ): Promise<void> => {
    let writer: SseWriter | undefined = undefined;
    const buffered: Array<[UiMessageChunk, string]> = [];
    const onChunk = (chunk: UiMessageChunk, id: string): void => {
      if (writer === undefined) {
        buffered.push([chunk, id]);
        return;
      }
      if (writer.closed) return;
      writer.chunk(chunk, id);
      if (res.writableLength > maxBuffered) {
        // A reader this slow is cut off; the turn goes on and it can resume (S35).
        metrics.slowReaderDropped();
        writer.close();
        res.destroy();
      }
    };
    const { done } = await start(onChunk);
    writer = openSse(res);
    for (const [chunk, id] of buffered.splice(0)) onChunk(chunk, id);
    const closed = (): void => {
      writer?.close();
    };
    req.on('close', closed);
    res.on('close', () => metrics.streamClosed());
    await done;
    req.off('close', closed);
    endSse(res, writer);
  };

  // ---- sessions ----

  v1.post(
    '/sessions',
    route(async (req, res) => {
      const parsed = parseBody(createSessionSchema, req.body);
      const session = await createSession(
        locals(res).principal,
        parsed.agent,
        parsed.input ?? {},
        env.newId(),
      );
      res.status(201).json({ id: session.id, agent: session.agent });
    }),
  );

  v1.get(
    '/sessions',
    route(async (req, res) => {
      const limit = Math.min(100, Math.max(1, Number(req.query.limit ?? 50) || 50));
      const p = locals(res).principal;
      const sessions = await env.sessions.list({ user: p.user, tenant: p.tenant }, { limit });
      res.json({ sessions: sessions.map(sessionView) });
    }),
  );

  v1.get(
    '/sessions/:id',
    route(async (req, res) => {
      const session = await ownSession(req, res);
      const [messages, activeTurn, pending] = await Promise.all([
        env.sessions.readMessages(session.id),
        env.sessions.activeTurn(session.id),
        env.sessions.peekPending(session.id),
      ]);
      // A running turn's partial answer is left out: a resumed stream replays it.
      const finished =
        activeTurn !== undefined && messages.at(-1)?.role === 'assistant'
          ? messages.slice(0, -1)
          : messages;
      const waiting = pending as PendingTurn | undefined;
      res.json({
        ...sessionView(session),
        messages: finished,
        activeTurn: activeTurn === undefined ? null : { id: activeTurn },
        pendingApprovals:
          waiting?.calls
            .filter((c) => c.needsApproval && waiting.decisions[c.toolCallId] === undefined)
            .map((c) => ({ toolCallId: c.toolCallId, toolName: c.toolName, input: c.input })) ?? [],
      });
    }),
  );

  v1.delete(
    '/sessions/:id',
    route(async (req, res) => {
      const session = await ownSession(req, res);
      if ((await env.sessions.activeTurn(session.id)) !== undefined) {
        await turns.stop(session.id);
      }
      await env.sessions.delete(session.id);
      await env.summaries?.delete(session.id);
      res.status(204).end();
    }),
  );

  // ---- turns ----

  const postMessage = async (
    req: Request,
    res: Response,
    session: SessionRecord,
    userMessage: StoredMessage,
    regenerate: boolean,
  ): Promise<void> => {
    const agent = agentOf(session);
    if ((await env.sessions.peekPending(session.id)) !== undefined) {
      throw new HttpError(409, 'CONFLICT', 'A tool call is waiting for approval in this session.', {
        details: { approvals: `/v1/sessions/${session.id}/approvals/:toolCallId` },
      });
    }
    const traceparent = req.header('traceparent');
    await streamTurn(req, res, (onChunk) =>
      turns.start({
        session,
        agent,
        principal: locals(res).principal,
        userMessage,
        regenerate,
        ...(traceparent === undefined ? {} : { traceparent }),
        onChunk,
      }),
    );
  };

  const parseChatBody = (body: unknown, sessionId?: string) => {
    const parsed = parseBody(chatBodySchema, body);
    if (sessionId !== undefined && parsed.id !== sessionId) {
      throw new HttpError(400, 'INVALID_INPUT', 'id: must equal the session id in the path.', {
        details: { path: 'id' },
      });
    }
    const newestUser = [...parsed.messages].reverse().find((m) => m.role === 'user');
    if (newestUser === undefined) {
      throw new HttpError(400, 'INVALID_INPUT', 'messages: no user message to answer.', {
        details: { path: 'messages' },
      });
    }
    return {
      id: parsed.id,
      message: toStoredUserMessage(newestUser),
      regenerate: parsed.trigger === 'regenerate-message',
    };
  };

  v1.post(
    '/sessions/:id/messages',
    route(async (req, res) => {
      const session = await ownSession(req, res);
      const body = req.body as Record<string, unknown> | undefined;
      if (body !== undefined && Array.isArray(body.messages)) {
        const chat = parseChatBody(body, session.id);
        await postMessage(req, res, session, chat.message, chat.regenerate);
      } else {
        await postMessage(req, res, session, toStoredUserMessage(body), false);
      }
    }),
  );

  v1.post(
    '/chat',
    route(async (req, res) => {
      const chat = parseChatBody(req.body);
      if (!SESSION_ID_PATTERN.test(chat.id)) {
        throw new HttpError(400, 'INVALID_INPUT', 'id: must be 1-64 letters, digits, "-" or "_".', {
          details: { path: 'id' },
        });
      }
      const principal = locals(res).principal;
      let session = await env.sessions.get(chat.id);
      if (session === undefined) {
        // useChat makes chat ids on the client: the first message opens the session.
        session = await createSession(principal, options.defaultAgent, {}, chat.id);
      } else if (
        session.owner.user !== principal.user ||
        session.owner.tenant !== principal.tenant
      ) {
        throw notFound();
      }
      await postMessage(req, res, session, chat.message, chat.regenerate);
    }),
  );

  const resume = route(async (req, res) => {
    const session = await ownSession(req, res);
    const after = req.header('last-event-id');
    const controller = new AbortController();
    let writer: SseWriter | undefined = undefined;
    req.on('close', () => {
      controller.abort();
      writer?.close();
    });
    const turnId = await turns.resumable(session.id);
    if (turnId === undefined) {
      res.status(204).end();
      return;
    }
    const w = openSse(res);
    writer = w;
    await turns.follow(session.id, {
      turnId,
      ...(after === undefined ? {} : { after }),
      signal: controller.signal,
      write: async (id, json) => {
        if (w.closed) return;
        w.raw(json, id);
        if (res.writableLength <= maxBuffered) return;
        // A replayed backlog can be far over the cap (S35): wait until the reader takes it, so
        // the buffer stays about one entry over the cap; a reader that stalls is dropped and
        // can resume again from its last id.
        const how = res.destroyed
          ? 'close'
          : await drainOf(res, options.slowReaderStallMs ?? 10_000);
        if (how === 'drain') return;
        if (how === 'timeout') metrics.slowReaderDropped();
        w.close();
        controller.abort();
        res.destroy();
      },
    });
    endSse(res, w);
  });
  v1.get('/sessions/:id/stream', resume);
  v1.get('/chat/:id/stream', resume);

  v1.post(
    '/sessions/:id/stop',
    route(async (req, res) => {
      const session = await ownSession(req, res);
      const stopped = await turns.stop(session.id);
      if (stopped) res.status(202).json({ stopped: true });
      else res.status(204).end();
    }),
  );

  v1.post(
    '/sessions/:id/approvals/:toolCallId',
    route(async (req, res) => {
      const session = await ownSession(req, res);
      const parsed = parseBody(approvalBodySchema, req.body);
      const toolCallId = String(req.params.toolCallId);
      const pending = (await env.sessions.takePending(session.id)) as PendingTurn | undefined;
      const call = pending?.calls.find((c) => c.toolCallId === toolCallId && c.needsApproval);
      if (pending === undefined || call === undefined) {
        if (pending !== undefined) await env.sessions.savePending(session.id, pending);
        throw notFound('tool call waiting for approval');
      }
      const decisions = {
        ...pending.decisions,
        [toolCallId]: {
          approved: parsed.approved,
          ...(parsed.reason === undefined ? {} : { reason: parsed.reason }),
        },
      };
      const next: PendingTurn = { ...pending, decisions };
      const waiting = next.calls.filter(
        (c) => c.needsApproval && decisions[c.toolCallId] === undefined,
      );
      if (waiting.length > 0) {
        await env.sessions.savePending(session.id, next);
        res.status(202).json({
          waiting: waiting.map((c) => ({ toolCallId: c.toolCallId, toolName: c.toolName })),
        });
        return;
      }
      const traceparent = req.header('traceparent');
      try {
        await streamTurn(req, res, (onChunk) =>
          turns.start({
            session,
            agent: agentOf(session),
            principal: locals(res).principal,
            continues: next,
            ...(traceparent === undefined ? {} : { traceparent }),
            onChunk,
          }),
        );
      } catch (error) {
        // The turn could not start (e.g. 409): keep the decisions so the client can retry.
        await env.sessions.savePending(session.id, next).catch(() => undefined);
        throw error;
      }
    }),
  );

  // ---- traces and usage ----

  v1.get(
    '/sessions/:id/traces',
    route(async (req, res) => {
      const session = await ownSession(req, res);
      res.json({ traces: await env.traces.listBySession(session.id) });
    }),
  );

  v1.get(
    '/traces/:id',
    route(async (req, res) => {
      const trace = await env.traces.get(String(req.params.id));
      const p = locals(res).principal;
      if (trace === undefined || trace.owner.user !== p.user || trace.owner.tenant !== p.tenant) {
        throw notFound('trace');
      }
      res.json(trace);
    }),
  );

  v1.get(
    '/usage',
    route(async (_req, res) => {
      const p = locals(res).principal;
      res.json(await env.meter.usage(p.tenant, p.user));
    }),
  );

  app.use('/v1', v1);

  app.use((_req: Request, res: Response) => {
    sendError(res, new HttpError(404, 'NOT_FOUND', 'No such endpoint.'));
  });

  // Errors: structured, no stack, nothing secret.
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const correlationId = (res.locals as Partial<Locals>).correlationId ?? randomUUID();
    if (error instanceof HttpError) {
      sendError(res, error, correlationId);
      return;
    }
    const type = (error as { type?: string }).type;
    if (type === 'entity.too.large') {
      sendError(
        res,
        new HttpError(413, 'INVALID_INPUT', 'The request body is too large.'),
        correlationId,
      );
      return;
    }
    if (
      type === 'entity.parse.failed' ||
      type === 'encoding.unsupported' ||
      type === 'charset.unsupported'
    ) {
      sendError(
        res,
        new HttpError(400, 'INVALID_INPUT', 'The request body is not valid JSON.'),
        correlationId,
      );
      return;
    }
    const keel = keelErrorOf(error, correlationId);
    if (keel !== undefined && keel.code !== 'INTERNAL') {
      sendKeelError(res, httpStatusOf(keel.code), keel);
      return;
    }
    env.logger.error(
      { correlationId, err: error instanceof Error ? error.message : 'unknown' },
      'request failed',
    );
    sendError(
      res,
      new HttpError(500, 'INTERNAL', 'Something went wrong; quote the correlation id.', {
        retryable: true,
      }),
      correlationId,
    );
  });

  return app;
}
