/**
 * `models.yaml`: each model alias maps to an ordered fallback list of provider models with
 * their prices and context window (DESIGN.md section 8). The first entry is used; the next
 * only on a transient error before any content has streamed.
 */
import { z } from 'zod';

/** A model alias as agents name it: `fast`, `smart`, `claude-sonnet`. */
export const MODEL_ALIAS_PATTERN = /^[a-z][a-z0-9_-]{0,39}$/;

/** A model alias field. */
export const modelAliasSchema = z
  .string()
  .regex(
    MODEL_ALIAS_PATTERN,
    'is not a valid model alias — use lowercase letters, digits, "-" or "_" (e.g. fast, smart)',
  );

const price = z.number().min(0);

/** Prices in US dollars per million tokens. */
export const modelPricesSchema = z.strictObject({
  inputPerMTok: price,
  outputPerMTok: price,
  cacheReadPerMTok: price.optional(),
  cacheWritePerMTok: price.optional(),
});

/** One provider model in an alias's fallback list. */
export const modelEntrySchema = z.strictObject({
  provider: z.enum(['anthropic', 'openai']),
  /** The provider's model id, e.g. `claude-sonnet-4-5` or `gpt-4.1-mini`. */
  model: z.string().min(1),
  /** An OpenAI-compatible server (vLLM, Ollama) or a proxy; the provider default otherwise. */
  baseUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** The environment variable holding the API key; the provider SDK's default otherwise. */
  apiKeyEnv: z
    .string()
    .regex(/^[A-Z_][A-Z0-9_]*$/, 'is not an environment variable name — use e.g. ANTHROPIC_API_KEY')
    .optional(),
  prices: modelPricesSchema,
  contextWindow: z.int().min(1),
  maxOutputTokens: z.int().min(1).optional(),
  /** Extended thinking: on, or on with a token budget. */
  thinking: z
    .union([z.boolean(), z.strictObject({ budgetTokens: z.int().min(1) })], {
      error: 'is not a thinking setting — write true, false, or { budgetTokens: 4096 }',
    })
    .optional(),
});

/** The whole `models.yaml`. */
export const modelsConfigSchema = z.strictObject({
  models: z.record(modelAliasSchema, z.array(modelEntrySchema).min(1)),
});

export type ModelPrices = z.output<typeof modelPricesSchema>;
export type ModelEntry = z.output<typeof modelEntrySchema>;
/** A validated `models.yaml`; `file` is where it was read from. */
export type ModelsConfig = z.output<typeof modelsConfigSchema> & { file: string };
