/**
 * Request bodies of the orchestrator's HTTP API, validated with zod. A user message is a
 * UIMessage with text parts; the AI SDK chat body is `{ id, messages, trigger }`.
 */
import { z } from 'zod';
import { HttpError } from './http-error.js';

export const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const sessionIdSchema = z
  .string()
  .regex(SESSION_ID_PATTERN, 'must be 1-64 letters, digits, "-" or "_"');

/** Values for the agent prompt's `{{VARIABLES}}`. */
const inputSchema = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'is not a variable name'),
  z.string().max(10_000),
);

export const createSessionSchema = z.strictObject({
  agent: z.string().min(1).max(40),
  input: inputSchema
    .refine((v) => Object.keys(v).length <= 50, 'has more than 50 variables')
    .optional(),
});

const textPartSchema = z.object({
  type: z.literal('text'),
  text: z.string().min(1).max(100_000),
  state: z.enum(['streaming', 'done']).optional(),
  providerMetadata: z.unknown().optional(),
});

/** The user's message as a UIMessage. Only text parts are accepted. */
export const userMessageSchema = z.object({
  id: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[^\r\n]*$/, 'must be one line'),
  role: z.literal('user'),
  parts: z.array(textPartSchema).min(1).max(50),
  metadata: z.unknown().optional(),
});

/** Earlier messages of a chat body are not read; only their shape is checked loosely. */
const anyMessageSchema = z.object({
  id: z.string(),
  role: z.enum(['system', 'user', 'assistant']),
  parts: z.array(z.unknown()),
});

/** `useChat`'s default transport body (extra top-level fields are ignored). */
export const chatBodySchema = z.object({
  id: z.string().min(1),
  messages: z.array(anyMessageSchema).min(1).max(10_000),
  trigger: z.enum(['submit-message', 'regenerate-message']).default('submit-message'),
  messageId: z.string().optional(),
});

export const approvalBodySchema = z.strictObject({
  approved: z.boolean(),
  reason: z.string().max(1_000).optional(),
});

export type CreateSessionBody = z.infer<typeof createSessionSchema>;
export type UserMessageBody = z.infer<typeof userMessageSchema>;
export type ChatBody = z.infer<typeof chatBodySchema>;

/**
 * The body parsed by `schema`, or a 400 INVALID_INPUT naming the first problem as
 * `path: message` (with `details.path`).
 */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue === undefined ? '' : issue.path.map(String).join('.');
  throw new HttpError(
    400,
    'INVALID_INPUT',
    `${path === '' ? 'body' : path}: ${issue?.message ?? 'is invalid'}`,
    { details: { path } },
  );
}
