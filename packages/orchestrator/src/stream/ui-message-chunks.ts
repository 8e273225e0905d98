import { z } from 'zod';

/**
 * The chunks of the AI SDK UI message stream (v1) that Keel emits, with exactly the field set
 * `ai@5.0.0` accepts. That version parses chunks with strict objects, so any extra field (for
 * example `finishReason` on `finish`, or `reason` on `abort`, which later versions added) makes
 * a 5.0.0 client fail the whole stream; these schemas reject them for the same reason.
 *
 * @example
 * ```ts
 * import { isUiMessageChunk } from './ui-message-chunks.js';
 * isUiMessageChunk({ type: 'text-delta', id: 't1', delta: 'Hi' }); // true
 * ```
 */

const startChunkSchema = z.strictObject({
  type: z.literal('start'),
  messageId: z.string().optional(),
  messageMetadata: z.unknown().optional(),
});
const startStepChunkSchema = z.strictObject({ type: z.literal('start-step') });
const textStartChunkSchema = z.strictObject({ type: z.literal('text-start'), id: z.string() });
const textDeltaChunkSchema = z.strictObject({
  type: z.literal('text-delta'),
  id: z.string(),
  delta: z.string(),
});
const textEndChunkSchema = z.strictObject({ type: z.literal('text-end'), id: z.string() });
const reasoningStartChunkSchema = z.strictObject({
  type: z.literal('reasoning-start'),
  id: z.string(),
});
const reasoningDeltaChunkSchema = z.strictObject({
  type: z.literal('reasoning-delta'),
  id: z.string(),
  delta: z.string(),
});
const reasoningEndChunkSchema = z.strictObject({
  type: z.literal('reasoning-end'),
  id: z.string(),
});
const toolInputStartChunkSchema = z.strictObject({
  type: z.literal('tool-input-start'),
  toolCallId: z.string(),
  toolName: z.string(),
});
const toolInputDeltaChunkSchema = z.strictObject({
  type: z.literal('tool-input-delta'),
  toolCallId: z.string(),
  inputTextDelta: z.string(),
});
const toolInputAvailableChunkSchema = z.strictObject({
  type: z.literal('tool-input-available'),
  toolCallId: z.string(),
  toolName: z.string(),
  input: z.unknown(),
});
const toolOutputAvailableChunkSchema = z.strictObject({
  type: z.literal('tool-output-available'),
  toolCallId: z.string(),
  output: z.unknown(),
});
const toolOutputErrorChunkSchema = z.strictObject({
  type: z.literal('tool-output-error'),
  toolCallId: z.string(),
  errorText: z.string(),
});
const finishStepChunkSchema = z.strictObject({ type: z.literal('finish-step') });
const finishChunkSchema = z.strictObject({
  type: z.literal('finish'),
  messageMetadata: z.unknown().optional(),
});
const errorChunkSchema = z.strictObject({ type: z.literal('error'), errorText: z.string() });
const messageMetadataChunkSchema = z.strictObject({
  type: z.literal('message-metadata'),
  messageMetadata: z.unknown(),
});
const abortChunkSchema = z.strictObject({ type: z.literal('abort') });

/** `data-<name>` parts (Keel's own are `data-keel-*`). */
export const dataUiMessageChunkSchema = z.strictObject({
  type: z.templateLiteral(['data-', z.string()]),
  id: z.string().optional(),
  data: z.unknown(),
  transient: z.boolean().optional(),
});

/** Every chunk type except `data-*`, discriminated on the literal `type`. */
export const fixedUiMessageChunkSchema = z.discriminatedUnion('type', [
  startChunkSchema,
  startStepChunkSchema,
  textStartChunkSchema,
  textDeltaChunkSchema,
  textEndChunkSchema,
  reasoningStartChunkSchema,
  reasoningDeltaChunkSchema,
  reasoningEndChunkSchema,
  toolInputStartChunkSchema,
  toolInputDeltaChunkSchema,
  toolInputAvailableChunkSchema,
  toolOutputAvailableChunkSchema,
  toolOutputErrorChunkSchema,
  finishStepChunkSchema,
  finishChunkSchema,
  errorChunkSchema,
  messageMetadataChunkSchema,
  abortChunkSchema,
]);

/**
 * One UI message stream chunk. `data-*` types are open-ended (a template literal), which a
 * discriminator cannot key on, so they sit beside the discriminated union.
 */
export const uiMessageChunkSchema = z.union([fixedUiMessageChunkSchema, dataUiMessageChunkSchema]);

export type StartChunk = z.infer<typeof startChunkSchema>;
export type StartStepChunk = z.infer<typeof startStepChunkSchema>;
export type TextStartChunk = z.infer<typeof textStartChunkSchema>;
export type TextDeltaChunk = z.infer<typeof textDeltaChunkSchema>;
export type TextEndChunk = z.infer<typeof textEndChunkSchema>;
export type ReasoningStartChunk = z.infer<typeof reasoningStartChunkSchema>;
export type ReasoningDeltaChunk = z.infer<typeof reasoningDeltaChunkSchema>;
export type ReasoningEndChunk = z.infer<typeof reasoningEndChunkSchema>;
export type ToolInputStartChunk = z.infer<typeof toolInputStartChunkSchema>;
export type ToolInputDeltaChunk = z.infer<typeof toolInputDeltaChunkSchema>;
export type ToolInputAvailableChunk = z.infer<typeof toolInputAvailableChunkSchema>;
export type ToolOutputAvailableChunk = z.infer<typeof toolOutputAvailableChunkSchema>;
export type ToolOutputErrorChunk = z.infer<typeof toolOutputErrorChunkSchema>;
export type FinishStepChunk = z.infer<typeof finishStepChunkSchema>;
export type FinishChunk = z.infer<typeof finishChunkSchema>;
export type ErrorChunk = z.infer<typeof errorChunkSchema>;
export type MessageMetadataChunk = z.infer<typeof messageMetadataChunkSchema>;
export type AbortChunk = z.infer<typeof abortChunkSchema>;
export type DataUiMessageChunk = z.infer<typeof dataUiMessageChunkSchema>;
export type UiMessageChunk = z.infer<typeof uiMessageChunkSchema>;
export type UiMessageChunkType = UiMessageChunk['type'];

/** True when `value` is a chunk an `ai@5.0.0` client accepts. */
export function isUiMessageChunk(value: unknown): value is UiMessageChunk {
  return uiMessageChunkSchema.safeParse(value).success;
}

/** True for `data-*` chunks. */
export function isDataUiMessageChunk(chunk: UiMessageChunk): chunk is DataUiMessageChunk {
  return chunk.type.startsWith('data-');
}
