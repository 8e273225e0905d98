/**
 * Builds the ModelClients of a models.yaml alias (DESIGN.md section 8), in fallback order.
 * API keys come from an injected environment (`apiKeyEnv`, else the provider's usual
 * variable). A missing key is a placeholder only for an entry with its own `baseUrl` (a local
 * or OpenAI-compatible server); otherwise that entry fails every call with a non-transient
 * `UNAUTHENTICATED` error naming the variable to set.
 */
import type { ModelEntry, ModelsConfig } from '../config/models-config.js';
import { createAnthropicClient } from './anthropic-client.js';
import { createOpenAIClient } from './openai-client.js';
import { ModelCallError } from './model-provider.js';
import type { ModelClient, ModelEvent } from './model-provider.js';

/** A ModelClient with the models.yaml entry it came from (prices, context window). */
export interface ConfiguredModelClient extends ModelClient {
  readonly entry: ModelEntry;
}

export interface CreateModelClientsOptions {
  /** Where API keys are read from (e.g. `process.env`). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly fetch?: typeof globalThis.fetch;
  /** Per-request SDK timeout in ms. */
  readonly timeoutMs?: number;
}

const DEFAULT_KEY_ENV: Readonly<Record<ModelEntry['provider'], string>> = {
  anthropic: 'ANTHROPIC_API_KEY',
  openai: 'OPENAI_API_KEY',
};

/** Sent to a local server that wants no key; the SDKs refuse to run without one. */
export const PLACEHOLDER_API_KEY = 'keel-local-no-key';

/**
 * The clients of one alias, in order.
 *
 * @example
 * ```ts
 * const clients = createModelClients(modelsConfig, 'fast', { env: process.env });
 * const stream = streamWithFallback(clients, request);
 * ```
 */
export function createModelClients(
  config: Pick<ModelsConfig, 'models'>,
  alias: string,
  options: CreateModelClientsOptions,
): ConfiguredModelClient[] {
  const entries = Object.hasOwn(config.models, alias) ? config.models[alias] : undefined;
  if (!entries) {
    throw new ModelCallError(
      {
        code: 'NOT_FOUND',
        message: `model alias "${alias}" is not in models.yaml`,
        retryable: false,
        details: { alias },
        correlationId: '',
      },
      false,
    );
  }
  return entries.map((entry) => createModelClient(entry, options));
}

/** The client of one models.yaml entry. */
export function createModelClient(
  entry: ModelEntry,
  options: CreateModelClientsOptions,
): ConfiguredModelClient {
  const keyEnv = entry.apiKeyEnv ?? DEFAULT_KEY_ENV[entry.provider];
  const value = options.env[keyEnv];
  const apiKey =
    value !== undefined && value !== ''
      ? value
      : entry.baseUrl !== undefined
        ? PLACEHOLDER_API_KEY
        : undefined;
  if (apiKey === undefined) return missingKeyClient(entry, keyEnv);
  const common = {
    model: entry.model,
    apiKey,
    ...(entry.baseUrl !== undefined ? { baseURL: entry.baseUrl } : {}),
    ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  };
  const client =
    entry.provider === 'anthropic'
      ? createAnthropicClient({
          ...common,
          ...(entry.thinking !== undefined ? { thinking: entry.thinking } : {}),
        })
      : createOpenAIClient(common);
  return { provider: client.provider, model: client.model, stream: client.stream, entry };
}

function missingKeyClient(entry: ModelEntry, keyEnv: string): ConfiguredModelClient {
  // eslint-disable-next-line require-yield
  async function* stream(): AsyncGenerator<ModelEvent> {
    throw new ModelCallError(
      {
        code: 'UNAUTHENTICATED',
        message: `${entry.provider} model ${entry.model}: no API key — set ${keyEnv}`,
        retryable: false,
        details: { provider: entry.provider, model: entry.model, apiKeyEnv: keyEnv },
        correlationId: '',
      },
      false,
    );
  }
  return { provider: entry.provider, model: entry.model, stream, entry };
}
