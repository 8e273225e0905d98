/**
 * The OpenAI adapter of ModelClient (DESIGN.md section 8): Chat Completions over `openai`,
 * streamed with usage, the SDK's own retries off (`maxRetries: 0`). Any OpenAI-compatible
 * server (vLLM, Ollama, a proxy) works through `baseURL`.
 *
 * Chat Completions has no error flag on a tool message, so an error result reaches the model
 * as `{"isError":true,"error":<the result JSON>}`.
 */
import OpenAI from 'openai';
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import { providerStreamError, streamEndedEarly } from './classify-provider-error.js';
import { parseToolInput } from './parse-tool-input.js';
import type {
  ModelClient,
  ModelEvent,
  ModelMessage,
  ModelRequest,
  ModelTokenUsage,
} from './model-provider.js';

export interface OpenAIClientOptions {
  readonly model: string;
  /** Defaults to the SDK's own lookup (`OPENAI_API_KEY`). */
  readonly apiKey?: string;
  readonly baseURL?: string;
  readonly fetch?: typeof globalThis.fetch;
  /** Per-request timeout of the SDK in ms (default: the SDK's). */
  readonly timeoutMs?: number;
  /**
   * The output limit's field. OpenAI's own API wants `max_completion_tokens` (its reasoning
   * models refuse `max_tokens`); many compatible servers know only `max_tokens`. Default:
   * `max_completion_tokens` without a `baseURL`, `max_tokens` with one.
   */
  readonly maxTokensField?: 'max_tokens' | 'max_completion_tokens';
}

/** The text a tool message carries for a result; error results are marked `isError`. */
export function openAIToolContent(content: string, isError: boolean): string {
  if (!isError) return content;
  let error: unknown = content;
  try {
    error = JSON.parse(content);
  } catch {
    // not JSON: sent as a string
  }
  return JSON.stringify({ isError: true, error });
}

/** Converts a normalized request's system prompt and messages to Chat Completions messages. */
export function toOpenAIMessages(
  system: string,
  messages: readonly ModelMessage[],
): ChatCompletionMessageParam[] {
  const out: ChatCompletionMessageParam[] = [];
  if (system !== '') out.push({ role: 'system', content: system });
  for (const message of messages) {
    const text = message.content
      .filter((part) => part.type === 'text')
      .map((part) => part.text)
      .join('');
    if (message.role === 'assistant') {
      const calls = message.content.flatMap((part) =>
        part.type === 'tool-call'
          ? [
              {
                id: part.toolCallId,
                type: 'function' as const,
                function: { name: part.toolName, arguments: JSON.stringify(part.input ?? {}) },
              },
            ]
          : [],
      );
      if (calls.length === 0 && text === '') continue;
      out.push({
        role: 'assistant',
        content: text === '' ? null : text,
        ...(calls.length > 0 ? { tool_calls: calls } : {}),
      });
    } else {
      for (const part of message.content) {
        if (part.type === 'tool-result')
          out.push({
            role: 'tool',
            tool_call_id: part.toolCallId,
            content: openAIToolContent(part.content, part.isError),
          });
      }
      if (text !== '') out.push({ role: 'user', content: text });
    }
  }
  return out;
}

/** Converts normalized tools to Chat Completions function tools. */
export function toOpenAITools(tools: ModelRequest['tools']): ChatCompletionTool[] {
  return tools.map((tool) => ({
    type: 'function',
    function: {
      name: tool.name,
      ...(tool.description !== undefined ? { description: tool.description } : {}),
      parameters: tool.inputSchema,
    },
  }));
}

function mapFinishReason(
  reason: string | null | undefined,
): 'stop' | 'tool-calls' | 'length' | 'other' {
  switch (reason) {
    case 'stop':
      return 'stop';
    case 'tool_calls':
    case 'function_call':
      return 'tool-calls';
    case 'length':
      return 'length';
    default:
      return 'other';
  }
}

/**
 * Creates the OpenAI ModelClient.
 *
 * @example
 * ```ts
 * const client = createOpenAIClient({ model: 'llama3', baseURL: 'http://127.0.0.1:11434/v1', apiKey: 'local' });
 * for await (const event of client.stream({ system: '', messages, tools: [], maxOutputTokens: 512 })) {
 *   if (event.type === 'text-delta') process.stdout.write(event.text);
 * }
 * ```
 */
export function createOpenAIClient(options: OpenAIClientOptions): ModelClient {
  const { model } = options;
  const context = { provider: 'openai' as const, model };
  const maxTokensField =
    options.maxTokensField ??
    (options.baseURL === undefined ? 'max_completion_tokens' : 'max_tokens');
  let sdk: OpenAI | undefined;
  const getSdk = (): OpenAI => {
    sdk ??= new OpenAI({
      ...(options.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
      ...(options.baseURL !== undefined ? { baseURL: options.baseURL } : {}),
      ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
      ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
      maxRetries: 0,
    });
    return sdk;
  };

  async function* stream(request: ModelRequest): AsyncGenerator<ModelEvent> {
    const signal = request.signal;
    signal?.throwIfAborted();
    const params: ChatCompletionCreateParamsStreaming = {
      model,
      messages: toOpenAIMessages(request.system, request.messages),
      [maxTokensField]: request.maxOutputTokens,
      stream: true,
      stream_options: { include_usage: true },
      ...(request.tools.length > 0 ? { tools: toOpenAITools(request.tools) } : {}),
    };
    let chunks: AsyncIterable<ChatCompletionChunk>;
    try {
      chunks = await getSdk().chat.completions.create(params, signal ? { signal } : {});
    } catch (error) {
      throw providerStreamError(error, signal, context);
    }

    interface Call {
      id: string;
      name: string;
      args: string;
      started: boolean;
    }
    const calls = new Map<number, Call>();
    let finishReason: string | null | undefined;
    let usage: ModelTokenUsage = {
      inputTokens: 0,
      outputTokens: 0,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
    };

    try {
      for await (const chunk of chunks) {
        signal?.throwIfAborted();
        if (chunk.usage) {
          usage = {
            inputTokens: chunk.usage.prompt_tokens ?? 0,
            outputTokens: chunk.usage.completion_tokens ?? 0,
            cacheReadTokens: chunk.usage.prompt_tokens_details?.cached_tokens ?? 0,
            cacheWriteTokens: 0,
          };
        }
        const choice = chunk.choices[0];
        if (!choice) continue;
        const delta = choice.delta;
        // OpenAI-compatible servers (vLLM, DeepSeek, Ollama) stream reasoning in a side field.
        const reasoning = (delta as { reasoning_content?: unknown } | undefined)?.reasoning_content;
        if (typeof reasoning === 'string' && reasoning !== '') {
          yield { type: 'reasoning-delta', text: reasoning };
        }
        if (typeof delta?.content === 'string' && delta.content !== '') {
          yield { type: 'text-delta', text: delta.content };
        }
        for (const toolDelta of delta?.tool_calls ?? []) {
          const index = toolDelta.index ?? 0;
          let call = calls.get(index);
          if (!call) {
            call = { id: '', name: '', args: '', started: false };
            calls.set(index, call);
          }
          if (toolDelta.id) call.id = toolDelta.id;
          if (toolDelta.function?.name) call.name += toolDelta.function.name;
          const args = toolDelta.function?.arguments ?? '';
          if (!call.started && call.id !== '' && call.name !== '') {
            call.started = true;
            yield { type: 'tool-call-start', toolCallId: call.id, toolName: call.name };
            // Arguments that arrived before the id and name are sent once they are known.
            if (call.args !== '')
              yield { type: 'tool-call-delta', toolCallId: call.id, inputTextDelta: call.args };
          }
          call.args += args;
          if (call.started && args !== '')
            yield { type: 'tool-call-delta', toolCallId: call.id, inputTextDelta: args };
        }
        if (choice.finish_reason) finishReason = choice.finish_reason;
      }
    } catch (error) {
      throw providerStreamError(error, signal, context);
    }
    if (finishReason === undefined || finishReason === null) {
      signal?.throwIfAborted();
      throw streamEndedEarly(context);
    }
    const ordered = [...calls.entries()].sort(([a], [b]) => a - b);
    for (const [index, call] of ordered) {
      if (!call.started) {
        // Some compatible servers send no id; the history needs one to pair the result.
        if (call.id === '') call.id = `call_${index}`;
        yield { type: 'tool-call-start', toolCallId: call.id, toolName: call.name };
        if (call.args !== '')
          yield { type: 'tool-call-delta', toolCallId: call.id, inputTextDelta: call.args };
      }
      yield {
        type: 'tool-call',
        toolCallId: call.id,
        toolName: call.name,
        input: parseToolInput(call.args),
      };
    }
    yield { type: 'finish', finishReason: mapFinishReason(finishReason), usage };
  }

  return { provider: 'openai', model, stream };
}
