/**
 * One interface over the provider SDKs (DESIGN.md section 8): a normalized request in, a
 * normalized event stream out. Adapters: Anthropic (`@anthropic-ai/sdk`), OpenAI (`openai`).
 */
import type { KeelError } from '@keel/tool-sdk/contract';

export interface ModelToolSpec {
  /** The exposed name (`orders__get_order`). */
  readonly name: string;
  readonly description?: string;
  /** JSON Schema of the input. */
  readonly inputSchema: Record<string, unknown>;
}

export type ModelContentPart =
  | { readonly type: 'text'; readonly text: string }
  | {
      readonly type: 'tool-call';
      readonly toolCallId: string;
      readonly toolName: string;
      readonly input: unknown;
    }
  | {
      readonly type: 'tool-result';
      readonly toolCallId: string;
      readonly toolName: string;
      /** JSON text given to the model. */
      readonly content: string;
      readonly isError: boolean;
    };

export interface ModelMessage {
  readonly role: 'user' | 'assistant';
  readonly content: readonly ModelContentPart[];
}

export interface ModelRequest {
  readonly system: string;
  readonly messages: readonly ModelMessage[];
  readonly tools: readonly ModelToolSpec[];
  readonly maxOutputTokens: number;
  readonly signal?: AbortSignal;
}

export interface ModelTokenUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheReadTokens: number;
  readonly cacheWriteTokens: number;
}

/** Normalized stream events. Every successful stream ends with exactly one `finish`. */
export type ModelEvent =
  | { readonly type: 'text-delta'; readonly text: string }
  | { readonly type: 'reasoning-delta'; readonly text: string }
  | { readonly type: 'tool-call-start'; readonly toolCallId: string; readonly toolName: string }
  | {
      readonly type: 'tool-call-delta';
      readonly toolCallId: string;
      readonly inputTextDelta: string;
    }
  | {
      readonly type: 'tool-call';
      readonly toolCallId: string;
      readonly toolName: string;
      readonly input: unknown;
    }
  | {
      readonly type: 'finish';
      readonly finishReason: 'stop' | 'tool-calls' | 'length' | 'other';
      readonly usage: ModelTokenUsage;
    };

/** A provider call failure, classified. `transient` = 429, 5xx, overloaded, timeout, connection. */
export class ModelCallError extends Error {
  override readonly name = 'ModelCallError';
  constructor(
    readonly keel: KeelError,
    readonly transient: boolean,
    readonly status?: number,
  ) {
    super(keel.message);
  }
}

/** One provider model (a models.yaml entry made concrete). */
export interface ModelClient {
  readonly provider: 'anthropic' | 'openai';
  readonly model: string;
  /** Throws ModelCallError before the first event, or from the iterator mid-stream. */
  stream(request: ModelRequest): AsyncIterable<ModelEvent>;
}
