/**
 * Conservative token estimates before a call (DESIGN.md section 8) and cutting the history the
 * model sees to its context window. No local tokenizer: characters / 3.5, rounded up, plus a
 * fixed overhead per message and per tool call or result, so the estimate errs high.
 */
import type { ModelMessage, ModelRequest, ModelToolSpec } from './model-provider.js';

/** Characters per token assumed; lower than the usual ~4 so the estimate errs high. */
export const CHARS_PER_TOKEN = 3.5;
/** Role markers and message framing. */
export const MESSAGE_OVERHEAD_TOKENS = 4;
/** Ids, names and block framing of one tool call or tool result. */
export const TOOL_PART_OVERHEAD_TOKENS = 10;
/** Framing of one tool definition. */
export const TOOL_SPEC_OVERHEAD_TOKENS = 8;

/** Estimated tokens of a text. */
export function estimateTextTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}

function jsonLength(value: unknown): number {
  try {
    return JSON.stringify(value ?? {})?.length ?? 0;
  } catch {
    return 0;
  }
}

/** Estimated tokens of one message. */
export function estimateMessageTokens(message: ModelMessage): number {
  let tokens = MESSAGE_OVERHEAD_TOKENS;
  for (const part of message.content) {
    switch (part.type) {
      case 'text':
        tokens += estimateTextTokens(part.text);
        break;
      case 'tool-call':
        tokens +=
          TOOL_PART_OVERHEAD_TOKENS +
          Math.ceil((part.toolName.length + jsonLength(part.input)) / CHARS_PER_TOKEN);
        break;
      case 'tool-result':
        tokens += TOOL_PART_OVERHEAD_TOKENS + estimateTextTokens(part.content);
        break;
    }
  }
  return tokens;
}

/** Estimated tokens of the tool definitions. */
export function estimateToolsTokens(tools: readonly ModelToolSpec[]): number {
  let tokens = 0;
  for (const tool of tools) {
    tokens +=
      TOOL_SPEC_OVERHEAD_TOKENS +
      Math.ceil(
        (tool.name.length + (tool.description?.length ?? 0) + jsonLength(tool.inputSchema)) /
          CHARS_PER_TOKEN,
      );
  }
  return tokens;
}

/** Estimated tokens of the system prompt. */
export function estimateSystemTokens(system: string): number {
  return system === '' ? 0 : MESSAGE_OVERHEAD_TOKENS + estimateTextTokens(system);
}

/** Estimated input tokens of a whole request (system, tools, messages). */
export function estimateRequestTokens(
  request: Pick<ModelRequest, 'system' | 'messages' | 'tools'>,
): number {
  return (
    estimateSystemTokens(request.system) +
    estimateToolsTokens(request.tools) +
    request.messages.reduce((sum, message) => sum + estimateMessageTokens(message), 0)
  );
}

export interface FitToWindowOptions {
  readonly contextWindow: number;
  /** Reserved for the answer. */
  readonly maxOutputTokens: number;
  readonly systemTokens: number;
  readonly toolsTokens: number;
}

export interface FitToWindowResult {
  /** The newest messages that fit (the same objects, not copies). */
  readonly messages: readonly ModelMessage[];
  /** How many of the oldest messages were left out. */
  readonly dropped: number;
  /** Estimated tokens of the kept messages. */
  readonly messageTokens: number;
  /** False when even the shortest allowed suffix is over the budget; it is returned anyway. */
  readonly fits: boolean;
}

/** A message the kept history may start with: a user message that is not a tool result. */
function canStart(message: ModelMessage): boolean {
  return message.role === 'user' && !message.content.some((part) => part.type === 'tool-result');
}

/**
 * Drops the oldest messages until the rest fit in the window left after the system prompt,
 * the tools and the reserved output. The kept history starts at a user message that carries
 * no tool result, so a tool call is never separated from its result and a result never comes
 * first (a history that fits whole is kept whole). Pure: the input array is not changed.
 *
 * @example
 * ```ts
 * const { messages } = fitToWindow(history, {
 *   contextWindow: 200_000, maxOutputTokens: 8192,
 *   systemTokens: estimateSystemTokens(system), toolsTokens: estimateToolsTokens(tools),
 * });
 * ```
 */
export function fitToWindow(
  messages: readonly ModelMessage[],
  options: FitToWindowOptions,
): FitToWindowResult {
  const budget =
    options.contextWindow - options.maxOutputTokens - options.systemTokens - options.toolsTokens;
  // suffix[i] = estimated tokens of messages[i..]
  const suffix = new Array<number>(messages.length + 1).fill(0);
  for (let i = messages.length - 1; i >= 0; i--) {
    suffix[i] = (suffix[i + 1] ?? 0) + estimateMessageTokens(messages[i] as ModelMessage);
  }
  // All of it fits: keep it as it is, whatever it starts with.
  if ((suffix[0] ?? 0) <= budget) return result(messages, 0, suffix, true);
  let lastStart: number | undefined;
  for (let i = 0; i < messages.length; i++) {
    if (!canStart(messages[i] as ModelMessage)) continue;
    lastStart = i;
    if ((suffix[i] ?? 0) <= budget) return result(messages, i, suffix, true);
  }
  // Nothing fits: keep the shortest valid suffix (the last user message) and say so.
  return result(messages, lastStart ?? 0, suffix, false);
}

function result(
  messages: readonly ModelMessage[],
  start: number,
  suffix: readonly number[],
  fits: boolean,
): FitToWindowResult {
  return {
    messages: start === 0 ? messages : messages.slice(start),
    dropped: start,
    messageTokens: suffix[start] ?? 0,
    fits,
  };
}
