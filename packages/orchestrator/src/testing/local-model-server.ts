import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Which wire protocol a recorded request arrived in. */
export type LocalModelProvider = 'anthropic' | 'openai';

/** A tool call as the model made it (assistant side). */
export interface LocalModelToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: unknown;
}

/** A tool result as the caller sent it back (user/tool side). */
export interface LocalModelToolResult {
  readonly toolCallId: string;
  readonly content: string;
  readonly isError: boolean;
}

/** One message of a request, the same shape whichever provider it came from. */
export interface LocalModelMessage {
  readonly role: 'system' | 'user' | 'assistant' | 'tool';
  readonly text: string;
  readonly toolCalls: readonly LocalModelToolCall[];
  readonly toolResults: readonly LocalModelToolResult[];
}

/** A tool the caller offered, the same shape whichever provider it came from. */
export interface LocalModelTool {
  readonly name: string;
  readonly description: string | undefined;
  readonly parameters: unknown;
}

/** A request as the script sees it and as `server.requests` records it. */
export interface LocalModelRequest {
  readonly provider: LocalModelProvider;
  readonly model: string;
  readonly stream: boolean;
  readonly messages: readonly LocalModelMessage[];
  readonly tools: readonly LocalModelTool[];
  /** The parsed JSON body, untouched. */
  readonly raw: unknown;
}

/** An error reply in the provider's own error shape. */
export interface LocalModelErrorReply {
  /** HTTP status (429, 500, 529...). Ignored for a mid-stream error. */
  readonly status: number;
  /** Provider error type, e.g. `rate_limit_error`, `overloaded_error`, `server_error`. */
  readonly type: string;
  readonly message: string;
  /** OpenAI `error.code`; defaults to null. */
  readonly code?: string;
  /** Sent as the `retry-after` header, in seconds. */
  readonly retryAfterS?: number;
}

/** What the scripted model answers to one request. */
export interface LocalModelReply {
  readonly text?: string;
  readonly toolCalls?: ReadonlyArray<{ readonly name: string; readonly arguments: object }>;
  readonly usage?: { readonly inputTokens: number; readonly outputTokens: number };
  /**
   * Without `failAfterChunks`: the whole request fails with this HTTP error. With it: the error
   * sent mid-stream (defaults to an overloaded/server error).
   */
  readonly error?: LocalModelErrorReply;
  /**
   * Streams only: after this many SSE events (Anthropic, pings not counted) or `data:` chunks
   * (OpenAI), fail the stream as `failMode` says. Capped so the failure always comes before the
   * terminating `message_stop` / `[DONE]`.
   */
  readonly failAfterChunks?: number;
  /** `error-event` (default) sends the provider's in-stream error; `destroy` drops the socket. */
  readonly failMode?: 'error-event' | 'destroy';
}

/** A function of the request, or a queue of replies used in order. */
export type LocalModelScript =
  | ((request: LocalModelRequest) => LocalModelReply | Promise<LocalModelReply>)
  | readonly LocalModelReply[];

export interface LocalModelServerOptions {
  readonly script: LocalModelScript;
  /** Characters per streamed text or arguments delta. Default 8. */
  readonly chunkSize?: number;
  /** Clock for OpenAI's `created`. Default `Date.now`. */
  readonly now?: () => number;
  /** Closes the server when aborted. */
  readonly signal?: AbortSignal;
  /** Port on 127.0.0.1. Default 0 (any free port). */
  readonly port?: number;
}

export interface LocalModelServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** For `new Anthropic({ baseURL })` (the SDK appends `/v1/messages`). */
  readonly anthropicBaseUrl: string;
  /** For `new OpenAI({ baseURL })` (the SDK appends `/chat/completions`). */
  readonly openaiBaseUrl: string;
  /** Every well-formed request received, normalised, in arrival order. */
  readonly requests: readonly LocalModelRequest[];
  close(): Promise<void>;
}

interface ResolvedToolCall {
  readonly id: string;
  readonly name: string;
  readonly argumentsJson: string;
}

interface ResolvedReply {
  readonly text: string;
  readonly toolCalls: readonly ResolvedToolCall[];
  readonly inputTokens: number;
  readonly outputTokens: number;
}

const CHARS_PER_TOKEN = 4;

/**
 * Starts a loopback HTTP server that speaks enough of the Anthropic Messages API and the OpenAI
 * Chat Completions API (streaming and not) for the real SDKs to run against it unchanged.
 *
 * @example
 * ```ts
 * const server = await createLocalModelServer({ script: [{ text: 'hello' }] });
 * const client = new Anthropic({ apiKey: 'x', baseURL: server.anthropicBaseUrl, maxRetries: 0 });
 * const message = await client.messages.stream({ model: 'm', max_tokens: 10, messages: [] }).finalMessage();
 * await server.close();
 * ```
 */
export async function createLocalModelServer(
  options: LocalModelServerOptions,
): Promise<LocalModelServer> {
  const chunkSize = Math.max(1, options.chunkSize ?? 8);
  const now = options.now ?? Date.now;
  const requests: LocalModelRequest[] = [];
  const queue = Array.isArray(options.script) ? [...(options.script as LocalModelReply[])] : null;
  let idCounter = 0;
  const nextId = (prefix: string): string => `${prefix}${++idCounter}`;

  const nextReply = async (request: LocalModelRequest): Promise<LocalModelReply> => {
    if (queue !== null) {
      const reply = queue.shift();
      return (
        reply ?? {
          error: {
            status: 500,
            type: 'api_error',
            message: 'local model server: script exhausted',
          },
        }
      );
    }
    return (options.script as (r: LocalModelRequest) => LocalModelReply | Promise<LocalModelReply>)(
      request,
    );
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    const provider: LocalModelProvider | null =
      path === '/v1/messages' ? 'anthropic' : path === '/v1/chat/completions' ? 'openai' : null;
    if (provider === null || req.method !== 'POST') {
      sendError(res, provider ?? 'openai', {
        status: 404,
        type: 'not_found_error',
        message: `local model server: no route ${req.method} ${path}`,
      });
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch {
      sendError(res, provider, {
        status: 400,
        type: 'invalid_request_error',
        message: 'local model server: body is not JSON',
      });
      return;
    }
    const request = provider === 'anthropic' ? normaliseAnthropic(body) : normaliseOpenAi(body);
    requests.push(request);
    const reply = await nextReply(request);
    const streamFailure = request.stream && reply.failAfterChunks !== undefined;
    if (reply.error && !streamFailure) {
      sendError(res, provider, reply.error);
      return;
    }
    const resolved = resolveReply(reply, request, provider, nextId);
    if (!request.stream) {
      const json =
        provider === 'anthropic'
          ? anthropicMessage(resolved, request.model, nextId('msg_local_'))
          : openAiCompletion(resolved, request.model, nextId('chatcmpl-local-'), now());
      sendJson(res, 200, json);
      return;
    }
    const events =
      provider === 'anthropic'
        ? anthropicEvents(resolved, request.model, nextId('msg_local_'), chunkSize)
        : openAiChunks(
            resolved,
            request.model,
            nextId('chatcmpl-local-'),
            now(),
            chunkSize,
            includeUsage(request.raw),
          );
    writeStream(res, provider, events, reply);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) {
        sendJson(res, 500, {
          type: 'error',
          error: { type: 'api_error', message: `local model server: ${String(error)}` },
        });
      } else {
        res.destroy();
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  let closed: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closed;
  };
  if (options.signal) {
    if (options.signal.aborted) await close();
    else options.signal.addEventListener('abort', () => void close(), { once: true });
  }

  return {
    url,
    anthropicBaseUrl: url,
    openaiBaseUrl: `${url}/v1`,
    requests,
    close,
  };
}

// ---- request normalisation ----

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function asString(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function parseArguments(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return json;
  }
}

/** Text of a string or of an array of `{type:'text', text}` parts (both providers allow either). */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  return asArray(content)
    .filter((part): part is Json => isRecord(part) && part['type'] === 'text')
    .map((part) => asString(part['text']))
    .join('');
}

function message(
  role: LocalModelMessage['role'],
  text: string,
  toolCalls: LocalModelToolCall[] = [],
  toolResults: LocalModelToolResult[] = [],
): LocalModelMessage {
  return { role, text, toolCalls, toolResults };
}

function normaliseAnthropic(body: unknown): LocalModelRequest {
  const raw = isRecord(body) ? body : {};
  const messages: LocalModelMessage[] = [];
  const system = textOf(raw['system']);
  if (system !== '') messages.push(message('system', system));
  for (const entry of asArray(raw['messages'])) {
    if (!isRecord(entry)) continue;
    const role = entry['role'] === 'assistant' ? 'assistant' : 'user';
    const content = entry['content'];
    const toolCalls: LocalModelToolCall[] = [];
    const toolResults: LocalModelToolResult[] = [];
    for (const block of asArray(content)) {
      if (!isRecord(block)) continue;
      if (block['type'] === 'tool_use') {
        toolCalls.push({
          id: asString(block['id']),
          name: asString(block['name']),
          arguments: block['input'],
        });
      } else if (block['type'] === 'tool_result') {
        toolResults.push({
          toolCallId: asString(block['tool_use_id']),
          content: textOf(block['content']),
          isError: block['is_error'] === true,
        });
      }
    }
    messages.push(message(role, textOf(content), toolCalls, toolResults));
  }
  const tools = asArray(raw['tools'])
    .filter(isRecord)
    .map((tool) => ({
      name: asString(tool['name']),
      description: typeof tool['description'] === 'string' ? tool['description'] : undefined,
      parameters: tool['input_schema'],
    }));
  return {
    provider: 'anthropic',
    model: asString(raw['model']),
    stream: raw['stream'] === true,
    messages,
    tools,
    raw: body,
  };
}

function normaliseOpenAi(body: unknown): LocalModelRequest {
  const raw = isRecord(body) ? body : {};
  const messages: LocalModelMessage[] = [];
  for (const entry of asArray(raw['messages'])) {
    if (!isRecord(entry)) continue;
    const text = textOf(entry['content']);
    switch (entry['role']) {
      case 'system':
      case 'developer':
        messages.push(message('system', text));
        break;
      case 'assistant': {
        const toolCalls = asArray(entry['tool_calls'])
          .filter(isRecord)
          .map((call) => {
            const fn = isRecord(call['function']) ? call['function'] : {};
            return {
              id: asString(call['id']),
              name: asString(fn['name']),
              arguments: parseArguments(asString(fn['arguments'])),
            };
          });
        messages.push(message('assistant', text, toolCalls));
        break;
      }
      case 'tool':
        messages.push(
          message(
            'tool',
            '',
            [],
            [{ toolCallId: asString(entry['tool_call_id']), content: text, isError: false }],
          ),
        );
        break;
      default:
        messages.push(message('user', text));
    }
  }
  const tools = asArray(raw['tools'])
    .filter(isRecord)
    .map((tool) => {
      const fn = isRecord(tool['function']) ? tool['function'] : {};
      return {
        name: asString(fn['name']),
        description: typeof fn['description'] === 'string' ? fn['description'] : undefined,
        parameters: fn['parameters'],
      };
    });
  return {
    provider: 'openai',
    model: asString(raw['model']),
    stream: raw['stream'] === true,
    messages,
    tools,
    raw: body,
  };
}

function includeUsage(raw: unknown): boolean {
  return (
    isRecord(raw) &&
    isRecord(raw['stream_options']) &&
    raw['stream_options']['include_usage'] === true
  );
}

function countTokens(chars: number): number {
  return Math.max(1, Math.ceil(chars / CHARS_PER_TOKEN));
}

function inputChars(request: LocalModelRequest): number {
  let chars = 0;
  for (const m of request.messages) {
    chars += m.text.length;
    for (const call of m.toolCalls)
      chars += call.name.length + JSON.stringify(call.arguments ?? '').length;
    for (const result of m.toolResults) chars += result.content.length;
  }
  return chars;
}

function resolveReply(
  reply: LocalModelReply,
  request: LocalModelRequest,
  provider: LocalModelProvider,
  nextId: (prefix: string) => string,
): ResolvedReply {
  const text = reply.text ?? '';
  const toolCalls = (reply.toolCalls ?? []).map((call) => ({
    id: nextId(provider === 'anthropic' ? 'toolu_local_' : 'call_local_'),
    name: call.name,
    argumentsJson: JSON.stringify(call.arguments),
  }));
  const outputChars = toolCalls.reduce((n, c) => n + c.argumentsJson.length, text.length);
  return {
    text,
    toolCalls,
    inputTokens: reply.usage?.inputTokens ?? countTokens(inputChars(request)),
    outputTokens: reply.usage?.outputTokens ?? countTokens(outputChars),
  };
}

// ---- response bodies ----

function pieces(value: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < value.length; i += size) out.push(value.slice(i, i + size));
  return out;
}

function anthropicStopReason(reply: ResolvedReply): string {
  return reply.toolCalls.length > 0 ? 'tool_use' : 'end_turn';
}

function anthropicMessage(reply: ResolvedReply, model: string, id: string): Json {
  const content: Json[] = [];
  if (reply.text !== '' || reply.toolCalls.length === 0)
    content.push({ type: 'text', text: reply.text });
  for (const call of reply.toolCalls) {
    content.push({
      type: 'tool_use',
      id: call.id,
      name: call.name,
      input: JSON.parse(call.argumentsJson),
    });
  }
  return {
    id,
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: anthropicStopReason(reply),
    stop_sequence: null,
    usage: {
      input_tokens: reply.inputTokens,
      output_tokens: reply.outputTokens,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    },
  };
}

interface SseEvent {
  readonly event?: string;
  readonly data: string;
  /** Pings are not counted by `failAfterChunks`. */
  readonly ping?: boolean;
}

function anthropicEvents(
  reply: ResolvedReply,
  model: string,
  id: string,
  size: number,
): SseEvent[] {
  const events: SseEvent[] = [];
  const push = (type: string, data: Json): void => {
    events.push({ event: type, data: JSON.stringify({ type, ...data }) });
  };
  push('message_start', {
    message: {
      id,
      type: 'message',
      role: 'assistant',
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: reply.inputTokens,
        output_tokens: 1,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
    },
  });
  events.push({ event: 'ping', data: JSON.stringify({ type: 'ping' }), ping: true });
  let index = 0;
  if (reply.text !== '' || reply.toolCalls.length === 0) {
    push('content_block_start', { index, content_block: { type: 'text', text: '' } });
    for (const text of pieces(reply.text, size)) {
      push('content_block_delta', { index, delta: { type: 'text_delta', text } });
    }
    push('content_block_stop', { index });
    index++;
  }
  for (const call of reply.toolCalls) {
    push('content_block_start', {
      index,
      content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} },
    });
    for (const partial_json of pieces(call.argumentsJson, size)) {
      push('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json } });
    }
    push('content_block_stop', { index });
    index++;
  }
  push('message_delta', {
    delta: { stop_reason: anthropicStopReason(reply), stop_sequence: null },
    usage: { output_tokens: reply.outputTokens },
  });
  push('message_stop', {});
  return events;
}

function openAiUsage(reply: ResolvedReply): Json {
  return {
    prompt_tokens: reply.inputTokens,
    completion_tokens: reply.outputTokens,
    total_tokens: reply.inputTokens + reply.outputTokens,
  };
}

function openAiFinishReason(reply: ResolvedReply): string {
  return reply.toolCalls.length > 0 ? 'tool_calls' : 'stop';
}

function openAiCompletion(reply: ResolvedReply, model: string, id: string, nowMs: number): Json {
  const messageBody: Json = {
    role: 'assistant',
    content: reply.text === '' && reply.toolCalls.length > 0 ? null : reply.text,
    refusal: null,
  };
  if (reply.toolCalls.length > 0) {
    messageBody['tool_calls'] = reply.toolCalls.map((call) => ({
      id: call.id,
      type: 'function',
      function: { name: call.name, arguments: call.argumentsJson },
    }));
  }
  return {
    id,
    object: 'chat.completion',
    created: Math.floor(nowMs / 1000),
    model,
    choices: [
      { index: 0, message: messageBody, logprobs: null, finish_reason: openAiFinishReason(reply) },
    ],
    usage: openAiUsage(reply),
  };
}

function openAiChunks(
  reply: ResolvedReply,
  model: string,
  id: string,
  nowMs: number,
  size: number,
  withUsage: boolean,
): SseEvent[] {
  const created = Math.floor(nowMs / 1000);
  const events: SseEvent[] = [];
  const chunk = (delta: Json, finishReason: string | null): void => {
    const body: Json = {
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    };
    if (withUsage) body['usage'] = null;
    events.push({ data: JSON.stringify(body) });
  };
  chunk({ role: 'assistant', content: '' }, null);
  for (const content of pieces(reply.text, size)) chunk({ content }, null);
  reply.toolCalls.forEach((call, index) => {
    chunk(
      {
        tool_calls: [
          { index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } },
        ],
      },
      null,
    );
    for (const args of pieces(call.argumentsJson, size)) {
      chunk({ tool_calls: [{ index, function: { arguments: args } }] }, null);
    }
  });
  chunk({}, openAiFinishReason(reply));
  if (withUsage) {
    events.push({
      data: JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [],
        usage: openAiUsage(reply),
      }),
    });
  }
  events.push({ data: '[DONE]' });
  return events;
}

// ---- transport ----

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Json = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'request-id': 'req_local',
    'x-request-id': 'req_local',
    ...headers,
  } as Record<string, string | number>);
  res.end(text);
}

function errorBody(provider: LocalModelProvider, error: LocalModelErrorReply): Json {
  return provider === 'anthropic'
    ? { type: 'error', error: { type: error.type, message: error.message } }
    : {
        error: { message: error.message, type: error.type, param: null, code: error.code ?? null },
      };
}

function sendError(
  res: ServerResponse,
  provider: LocalModelProvider,
  error: LocalModelErrorReply,
): void {
  const headers: Json = {};
  if (error.retryAfterS !== undefined) headers['retry-after'] = String(error.retryAfterS);
  sendJson(res, error.status, errorBody(provider, error), headers);
}

function formatSse(event: SseEvent): string {
  return `${event.event !== undefined ? `event: ${event.event}\n` : ''}data: ${event.data}\n\n`;
}

function writeStream(
  res: ServerResponse,
  provider: LocalModelProvider,
  events: readonly SseEvent[],
  reply: LocalModelReply,
): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'request-id': 'req_local',
    'x-request-id': 'req_local',
  });
  // A failure past the end still fails before the terminating event (`message_stop`, `[DONE]`),
  // or the SDK would finish cleanly and ignore it.
  const countable = events.filter((event) => !event.ping).length;
  const failAfter =
    reply.failAfterChunks === undefined
      ? undefined
      : Math.max(0, Math.min(reply.failAfterChunks, countable - 1));
  let counted = 0;
  for (const event of events) {
    if (failAfter !== undefined && !event.ping && counted >= failAfter) {
      failStream(res, provider, reply);
      return;
    }
    res.write(formatSse(event));
    if (!event.ping) counted++;
  }
  res.end();
}

function failStream(
  res: ServerResponse,
  provider: LocalModelProvider,
  reply: LocalModelReply,
): void {
  if (reply.failMode === 'destroy') {
    // Let what was written reach the client first, then cut the connection without a clean end.
    res.write('', () => res.socket?.destroy());
    return;
  }
  const error = reply.error ?? {
    status: provider === 'anthropic' ? 529 : 500,
    type: provider === 'anthropic' ? 'overloaded_error' : 'server_error',
    message: 'local model server: failed mid-stream',
  };
  const event: SseEvent =
    provider === 'anthropic'
      ? { event: 'error', data: JSON.stringify(errorBody(provider, error)) }
      : { data: JSON.stringify(errorBody(provider, error)) };
  res.end(formatSse(event));
}
