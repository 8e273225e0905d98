import type { UiMessageChunk } from './ui-message-chunks.js';

/** Text or reasoning: `state` is `streaming` until its `*-end` chunk. */
export interface TextUiPart {
  type: 'text';
  text: string;
  state: 'streaming' | 'done';
}
export interface ReasoningUiPart {
  type: 'reasoning';
  text: string;
  state: 'streaming' | 'done';
}
export interface StepStartUiPart {
  type: 'step-start';
}
export type ToolUiPart =
  | { type: `tool-${string}`; toolCallId: string; state: 'input-streaming'; input: unknown }
  | { type: `tool-${string}`; toolCallId: string; state: 'input-available'; input: unknown }
  | {
      type: `tool-${string}`;
      toolCallId: string;
      state: 'output-available';
      input: unknown;
      output: unknown;
    }
  | {
      type: `tool-${string}`;
      toolCallId: string;
      state: 'output-error';
      input: unknown;
      errorText: string;
    };
export interface DataUiPart {
  type: `data-${string}`;
  id?: string;
  data: unknown;
}
export type UiMessagePart =
  TextUiPart | ReasoningUiPart | StepStartUiPart | ToolUiPart | DataUiPart;

/** The assistant message a `useChat` / `readUIMessageStream` client rebuilds from the chunks. */
export interface AssembledUiMessage {
  id: string;
  role: 'assistant';
  metadata: unknown;
  parts: UiMessagePart[];
}

export interface AssembleUiMessageOptions {
  /** Used when the stream has no `start.messageId`. Default `''`. */
  messageId?: string;
}

/** The chunk sequence breaks the protocol (a delta before its start, an unknown tool call). */
export class InvalidUiMessageStreamError extends Error {
  readonly code = 'INVALID_UI_MESSAGE_STREAM';
  override readonly name = 'InvalidUiMessageStreamError';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Metadata from start, message-metadata and finish is merged deeply, as the AI SDK client does.
function mergeMetadata(base: unknown, update: unknown): unknown {
  if (update === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(update)) return update;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(update)) {
    merged[key] = mergeMetadata(base[key], value);
  }
  return merged;
}

function parsePartialInput(text: string, previous: unknown): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Incomplete JSON mid-stream: keep the last input that parsed.
    return previous;
  }
}

/**
 * Rebuilds the assistant UIMessage from a UI message stream, part by part as a client would:
 * text and reasoning parts, a `step-start` per step, `tool-<name>` parts that move through
 * `input-streaming` → `input-available` → `output-available` | `output-error`, and data parts
 * (a data part with an `id` replaces the earlier one of the same type and id; transient ones
 * are not kept). `error` and `abort` chunks add no part.
 *
 * @example
 * ```ts
 * const message = assembleUiMessage([
 *   { type: 'start', messageId: 'm1' },
 *   { type: 'text-start', id: 't' },
 *   { type: 'text-delta', id: 't', delta: 'Hi' },
 *   { type: 'text-end', id: 't' },
 *   { type: 'finish' },
 * ]);
 * // message.parts → [{ type: 'text', text: 'Hi', state: 'done' }]
 * ```
 */
export function assembleUiMessage(
  chunks: Iterable<UiMessageChunk>,
  options: AssembleUiMessageOptions = {},
): AssembledUiMessage {
  const message: AssembledUiMessage = {
    id: options.messageId ?? '',
    role: 'assistant',
    metadata: undefined,
    parts: [],
  };
  const openText = new Map<string, TextUiPart>();
  const openReasoning = new Map<string, ReasoningUiPart>();
  const tools = new Map<string, { index: number; toolName: string; inputText: string }>();

  const toolPart = (toolCallId: string, chunkType: string): ToolUiPart & { index: number } => {
    const entry = tools.get(toolCallId);
    if (entry === undefined) {
      throw new InvalidUiMessageStreamError(`${chunkType} for unknown tool call ${toolCallId}`);
    }
    return { ...(message.parts[entry.index] as ToolUiPart), index: entry.index };
  };
  const setTool = (index: number, part: ToolUiPart): void => {
    message.parts[index] = part;
  };

  for (const chunk of chunks) {
    switch (chunk.type) {
      case 'start':
        if (chunk.messageId !== undefined) message.id = chunk.messageId;
        message.metadata = mergeMetadata(message.metadata, chunk.messageMetadata);
        break;
      case 'finish':
      case 'message-metadata':
        message.metadata = mergeMetadata(message.metadata, chunk.messageMetadata);
        break;
      case 'start-step':
        message.parts.push({ type: 'step-start' });
        break;
      case 'finish-step':
        // A new step starts fresh text and reasoning parts, even when ids repeat.
        openText.clear();
        openReasoning.clear();
        break;
      case 'text-start': {
        const part: TextUiPart = { type: 'text', text: '', state: 'streaming' };
        openText.set(chunk.id, part);
        message.parts.push(part);
        break;
      }
      case 'text-delta':
      case 'text-end': {
        const part = openText.get(chunk.id);
        if (part === undefined) {
          throw new InvalidUiMessageStreamError(`${chunk.type} before text-start ${chunk.id}`);
        }
        if (chunk.type === 'text-delta') part.text += chunk.delta;
        else part.state = 'done';
        break;
      }
      case 'reasoning-start': {
        const part: ReasoningUiPart = { type: 'reasoning', text: '', state: 'streaming' };
        openReasoning.set(chunk.id, part);
        message.parts.push(part);
        break;
      }
      case 'reasoning-delta':
      case 'reasoning-end': {
        const part = openReasoning.get(chunk.id);
        if (part === undefined) {
          throw new InvalidUiMessageStreamError(`${chunk.type} before reasoning-start ${chunk.id}`);
        }
        if (chunk.type === 'reasoning-delta') part.text += chunk.delta;
        else part.state = 'done';
        break;
      }
      case 'tool-input-start': {
        tools.set(chunk.toolCallId, {
          index: message.parts.length,
          toolName: chunk.toolName,
          inputText: '',
        });
        message.parts.push({
          type: `tool-${chunk.toolName}`,
          toolCallId: chunk.toolCallId,
          state: 'input-streaming',
          input: undefined,
        });
        break;
      }
      case 'tool-input-delta': {
        const entry = tools.get(chunk.toolCallId);
        const part = toolPart(chunk.toolCallId, chunk.type);
        if (entry === undefined || part.state !== 'input-streaming') {
          throw new InvalidUiMessageStreamError(
            `tool-input-delta after input of ${chunk.toolCallId}`,
          );
        }
        entry.inputText += chunk.inputTextDelta;
        setTool(part.index, {
          type: part.type,
          toolCallId: part.toolCallId,
          state: 'input-streaming',
          input: parsePartialInput(entry.inputText, part.input),
        });
        break;
      }
      case 'tool-input-available': {
        const next: ToolUiPart = {
          type: `tool-${chunk.toolName}`,
          toolCallId: chunk.toolCallId,
          state: 'input-available',
          input: chunk.input,
        };
        const entry = tools.get(chunk.toolCallId);
        if (entry === undefined) {
          tools.set(chunk.toolCallId, {
            index: message.parts.length,
            toolName: chunk.toolName,
            inputText: '',
          });
          message.parts.push(next);
        } else {
          setTool(entry.index, next);
        }
        break;
      }
      case 'tool-output-available': {
        const part = toolPart(chunk.toolCallId, chunk.type);
        setTool(part.index, {
          type: part.type,
          toolCallId: part.toolCallId,
          state: 'output-available',
          input: part.input,
          output: chunk.output,
        });
        break;
      }
      case 'tool-output-error': {
        const part = toolPart(chunk.toolCallId, chunk.type);
        setTool(part.index, {
          type: part.type,
          toolCallId: part.toolCallId,
          state: 'output-error',
          input: part.input,
          errorText: chunk.errorText,
        });
        break;
      }
      case 'error':
      case 'abort':
        break;
      default: {
        if (chunk.transient === true) break;
        const part: DataUiPart =
          chunk.id === undefined
            ? { type: chunk.type, data: chunk.data }
            : { type: chunk.type, id: chunk.id, data: chunk.data };
        const existing =
          chunk.id === undefined
            ? -1
            : message.parts.findIndex(
                (p) => p.type === chunk.type && 'id' in p && p.id === chunk.id,
              );
        if (existing >= 0) message.parts[existing] = part;
        else message.parts.push(part);
      }
    }
  }
  return message;
}
