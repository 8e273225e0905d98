/**
 * The Anthropic adapter of ModelClient (DESIGN.md section 8): Messages API over
 * `@anthropic-ai/sdk`, streamed, with the SDK's own retries off (`maxRetries: 0`) because the
 * fallback list counts attempts.
 *
 * Extended thinking and tool use: the API wants an assistant message's thinking blocks
 * (with their signatures) sent back unchanged while a tool-use loop is in progress, and the
 * normalized history has no place for them. The client therefore remembers the thinking
 * blocks of each response it streamed, keyed by that response's tool-call ids (bounded, in
 * memory), and puts them back in front of those tool calls. When they are unknown (another
 * process or provider made the call), that request goes without thinking instead of being
 * refused. Thinking blocks of finished turns are not needed and are not sent.
 */
import Anthropic from '@anthropic-ai/sdk';
import type {
  ContentBlockParam,
  MessageCreateParamsStreaming,
  MessageParam,
  RawMessageStreamEvent,
  RedactedThinkingBlockParam,
  ThinkingBlockParam,
  Tool,
} from '@anthropic-ai/sdk/resources/messages/messages';
import { parseToolInput } from './parse-tool-input.js';
import { providerStreamError as rethrow, streamEndedEarly } from './classify-provider-error.js';
import type {
  ModelClient,
  ModelEvent,
  ModelMessage,
  ModelRequest,
  ModelTokenUsage,
} from './model-provider.js';

export interface AnthropicClientOptions {
  readonly model: string;
  /** Defaults to the SDK's own lookup (`ANTHROPIC_API_KEY`). */
  readonly apiKey?: string;
  readonly baseURL?: string;
  /** Extended thinking; `true` uses a 4096-token budget. Clamped below `maxOutputTokens`. */
  readonly thinking?: boolean | { readonly budgetTokens: number };
  readonly fetch?: typeof globalThis.fetch;
  /** Per-request timeout of the SDK in ms (default: the SDK's). */
  readonly timeoutMs?: number;
}

const DEFAULT_THINKING_BUDGET = 4096;
const MIN_THINKING_BUDGET = 1024;
const THINKING_CACHE_LIMIT = 500;

type ThinkingParam = ThinkingBlockParam | RedactedThinkingBlockParam;

/** Converts normalized messages to Anthropic message params. */
export function toAnthropicMessages(
  messages: readonly ModelMessage[],
  thinkingFor?: (toolCallId: string) => readonly ThinkingParam[] | undefined,
): MessageParam[] {
  const out: MessageParam[] = [];
  for (const message of messages) {
    const blocks: ContentBlockParam[] = [];
    if (message.role === 'assistant') {
      const firstCall = message.content.find((part) => part.type === 'tool-call');
      const thinking = firstCall && thinkingFor ? thinkingFor(firstCall.toolCallId) : undefined;
      if (thinking) blocks.push(...thinking);
      for (const part of message.content) {
        if (part.type === 'text' && part.text !== '')
          blocks.push({ type: 'text', text: part.text });
        else if (part.type === 'tool-call')
          blocks.push({
            type: 'tool_use',
            id: part.toolCallId,
            name: part.toolName,
            input: part.input ?? {},
          });
      }
    } else {
      // Tool results must come first in a user message.
      for (const part of message.content) {
        if (part.type === 'tool-result')
          blocks.push({
            type: 'tool_result',
            tool_use_id: part.toolCallId,
            content: part.content,
            is_error: part.isError,
          });
      }
      for (const part of message.content) {
        if (part.type === 'text' && part.text !== '')
          blocks.push({ type: 'text', text: part.text });
      }
    }
    if (blocks.length > 0) out.push({ role: message.role, content: blocks });
  }
  return out;
}

/** Converts normalized tools to Anthropic tool params. */
export function toAnthropicTools(tools: ModelRequest['tools']): Tool[] {
  return tools.map((tool) => ({
    name: tool.name,
    ...(tool.description !== undefined ? { description: tool.description } : {}),
    input_schema: { type: 'object', ...tool.inputSchema } as Tool['input_schema'],
  }));
}

function mapStopReason(
  reason: string | null | undefined,
): 'stop' | 'tool-calls' | 'length' | 'other' {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
      return 'stop';
    case 'tool_use':
      return 'tool-calls';
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    default:
      return 'other';
  }
}

/** Whether the request continues a tool-use loop (the last message carries tool results). */
function inToolLoop(messages: readonly ModelMessage[]): { toolCallId: string } | undefined {
  const last = messages[messages.length - 1];
  if (last?.role !== 'user') return undefined;
  const result = last.content.find((part) => part.type === 'tool-result');
  return result ? { toolCallId: result.toolCallId } : undefined;
}

/**
 * Creates the Anthropic ModelClient.
 *
 * @example
 * ```ts
 * const client = createAnthropicClient({ model: 'claude-haiku-4-5', apiKey: process.env.ANTHROPIC_API_KEY });
 * for await (const event of client.stream({ system: '', messages, tools: [], maxOutputTokens: 1024 })) {
 *   if (event.type === 'text-delta') process.stdout.write(event.text);
 * }
 * ```
 */
export function createAnthropicClient(options: AnthropicClientOptions): ModelClient {
  const { model } = options;
  const context = { provider: 'anthropic' as const, model };
  let sdk: Anthropic | undefined;
  const getSdk = (): Anthropic => {
    sdk ??= new Anthropic({
      ...(options.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
      ...(options.baseURL !== undefined ? { baseURL: options.baseURL } : {}),
      ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
      ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
      maxRetries: 0,
    });
    return sdk;
  };
  const thinkingCache = new Map<string, readonly ThinkingParam[]>();
  const remember = (ids: readonly string[], blocks: readonly ThinkingParam[]): void => {
    if (blocks.length === 0) return;
    for (const id of ids) {
      thinkingCache.set(id, blocks);
      if (thinkingCache.size > THINKING_CACHE_LIMIT) {
        const oldest = thinkingCache.keys().next().value;
        if (oldest !== undefined) thinkingCache.delete(oldest);
      }
    }
  };

  const buildParams = (request: ModelRequest): MessageCreateParamsStreaming => {
    let budget: number | undefined;
    if (options.thinking) {
      const wanted =
        options.thinking === true ? DEFAULT_THINKING_BUDGET : options.thinking.budgetTokens;
      const clamped = Math.min(wanted, request.maxOutputTokens - 1);
      if (clamped >= MIN_THINKING_BUDGET) budget = clamped;
    }
    const loop = inToolLoop(request.messages);
    if (budget !== undefined && loop && !thinkingCache.has(loop.toolCallId)) budget = undefined;
    const useThinking = budget !== undefined;
    const messages = toAnthropicMessages(
      request.messages,
      useThinking ? (id) => thinkingCache.get(id) : undefined,
    );
    return {
      model,
      max_tokens: request.maxOutputTokens,
      stream: true,
      ...(request.system !== '' ? { system: request.system } : {}),
      messages,
      ...(request.tools.length > 0 ? { tools: toAnthropicTools(request.tools) } : {}),
      ...(budget !== undefined ? { thinking: { type: 'enabled', budget_tokens: budget } } : {}),
    };
  };

  async function* stream(request: ModelRequest): AsyncGenerator<ModelEvent> {
    const signal = request.signal;
    signal?.throwIfAborted();
    let events: AsyncIterable<RawMessageStreamEvent>;
    try {
      events = await getSdk().messages.create(buildParams(request), signal ? { signal } : {});
    } catch (error) {
      throw rethrow(error, signal, context);
    }

    interface Block {
      kind: 'text' | 'thinking' | 'redacted' | 'tool' | 'other';
      id?: string;
      name?: string;
      text: string;
      signature: string;
      data?: string;
    }
    const blocks = new Map<number, Block>();
    const thinking: ThinkingParam[] = [];
    const toolIds: string[] = [];
    let usage: ModelTokenUsage = {
      inputTokens: 0,
      outputTokens: 0,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
    };
    let stopReason: string | null | undefined;
    let stopped = false;

    try {
      for await (const event of events) {
        signal?.throwIfAborted();
        switch (event.type) {
          case 'message_start': {
            const u = event.message.usage;
            usage = {
              inputTokens: u.input_tokens ?? 0,
              outputTokens: u.output_tokens ?? 0,
              cacheReadTokens: u.cache_read_input_tokens ?? 0,
              cacheWriteTokens: u.cache_creation_input_tokens ?? 0,
            };
            break;
          }
          case 'content_block_start': {
            const cb = event.content_block;
            if (cb.type === 'tool_use') {
              blocks.set(event.index, {
                kind: 'tool',
                id: cb.id,
                name: cb.name,
                text: '',
                signature: '',
              });
              toolIds.push(cb.id);
              yield { type: 'tool-call-start', toolCallId: cb.id, toolName: cb.name };
            } else if (cb.type === 'text') {
              blocks.set(event.index, { kind: 'text', text: '', signature: '' });
              if (cb.text !== '') yield { type: 'text-delta', text: cb.text };
            } else if (cb.type === 'thinking') {
              blocks.set(event.index, {
                kind: 'thinking',
                text: cb.thinking,
                signature: cb.signature ?? '',
              });
              if (cb.thinking !== '') yield { type: 'reasoning-delta', text: cb.thinking };
            } else if (cb.type === 'redacted_thinking') {
              blocks.set(event.index, { kind: 'redacted', text: '', signature: '', data: cb.data });
            } else {
              blocks.set(event.index, { kind: 'other', text: '', signature: '' });
            }
            break;
          }
          case 'content_block_delta': {
            const block = blocks.get(event.index);
            const delta = event.delta;
            if (delta.type === 'text_delta') {
              if (delta.text !== '') yield { type: 'text-delta', text: delta.text };
            } else if (delta.type === 'thinking_delta') {
              if (block) block.text += delta.thinking;
              if (delta.thinking !== '') yield { type: 'reasoning-delta', text: delta.thinking };
            } else if (delta.type === 'signature_delta') {
              if (block) block.signature += delta.signature;
            } else if (delta.type === 'input_json_delta' && block?.kind === 'tool') {
              block.text += delta.partial_json;
              if (delta.partial_json !== '')
                yield {
                  type: 'tool-call-delta',
                  toolCallId: block.id ?? '',
                  inputTextDelta: delta.partial_json,
                };
            }
            break;
          }
          case 'content_block_stop': {
            const block = blocks.get(event.index);
            if (block?.kind === 'tool') {
              yield {
                type: 'tool-call',
                toolCallId: block.id ?? '',
                toolName: block.name ?? '',
                input: parseToolInput(block.text),
              };
            } else if (block?.kind === 'thinking') {
              thinking.push({ type: 'thinking', thinking: block.text, signature: block.signature });
            } else if (block?.kind === 'redacted' && block.data !== undefined) {
              thinking.push({ type: 'redacted_thinking', data: block.data });
            }
            break;
          }
          case 'message_delta': {
            stopReason = event.delta.stop_reason ?? stopReason;
            const u = event.usage;
            usage = {
              inputTokens: u.input_tokens ?? usage.inputTokens,
              outputTokens: u.output_tokens ?? usage.outputTokens,
              cacheReadTokens: u.cache_read_input_tokens ?? usage.cacheReadTokens,
              cacheWriteTokens: u.cache_creation_input_tokens ?? usage.cacheWriteTokens,
            };
            break;
          }
          case 'message_stop':
            stopped = true;
            break;
          default:
            break;
        }
      }
    } catch (error) {
      throw rethrow(error, signal, context);
    }
    if (!stopped) {
      signal?.throwIfAborted();
      throw streamEndedEarly(context);
    }
    remember(toolIds, thinking);
    yield { type: 'finish', finishReason: mapStopReason(stopReason), usage };
  }

  return { provider: 'anthropic', model, stream };
}
