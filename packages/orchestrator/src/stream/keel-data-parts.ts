/**
 * Keel's own UI message stream parts (DESIGN.md section 6), each with a zod schema, and the
 * message metadata the orchestrator attaches to an assistant message.
 */
import { z } from 'zod';

const keelErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  retryable: z.boolean(),
  details: z.record(z.string(), z.unknown()).optional(),
});

/** The turn is paused until the client approves or declines this tool call. */
export const keelApprovalDataSchema = z.strictObject({
  toolCallId: z.string(),
  toolName: z.string(),
  input: z.unknown(),
});

/** Progress of a running tool, relayed from the tool server through the gateway. */
export const keelProgressDataSchema = z.strictObject({
  toolCallId: z.string(),
  progress: z.number(),
  total: z.number().optional(),
  message: z.string().optional(),
});

/** A budget or a per-turn limit ended the turn. */
export const keelLimitDataSchema = z.strictObject({
  error: keelErrorSchema,
});

export const KEEL_DATA_PART_TYPES = {
  approval: 'data-keel-approval',
  progress: 'data-keel-progress',
  limit: 'data-keel-limit',
} as const;

export type KeelApprovalData = z.infer<typeof keelApprovalDataSchema>;
export type KeelProgressData = z.infer<typeof keelProgressDataSchema>;
export type KeelLimitData = z.infer<typeof keelLimitDataSchema>;

/** `messageMetadata` of an assistant message: `{ model, usage, costUsd, traceId }`. */
export const keelMessageMetadataSchema = z.object({
  model: z.string().optional(),
  usage: z
    .object({
      inputTokens: z.number(),
      outputTokens: z.number(),
      cacheReadTokens: z.number(),
      cacheWriteTokens: z.number(),
    })
    .optional(),
  costUsd: z.number().optional(),
  traceId: z.string().optional(),
});
export type KeelMessageMetadata = z.infer<typeof keelMessageMetadataSchema>;
