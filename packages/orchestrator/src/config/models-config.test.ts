import { describe, expect, it } from 'vitest';
import { modelsConfigSchema } from './models-config.js';

const entry = {
  provider: 'openai',
  model: 'llama3',
  baseUrl: 'http://127.0.0.1:11434/v1',
  prices: { inputPerMTok: 0, outputPerMTok: 0 },
  contextWindow: 8192,
};

describe('modelsConfigSchema', () => {
  it('accepts an OpenAI-compatible server by base URL, thinking as true or a budget', () => {
    const parsed = modelsConfigSchema.parse({
      models: {
        local: [
          entry,
          { ...entry, thinking: true },
          { ...entry, thinking: { budgetTokens: 2048 } },
        ],
      },
    });
    expect(parsed.models.local).toHaveLength(3);
  });

  it('refuses a base URL that is not http(s), and a bad alias', () => {
    expect(
      modelsConfigSchema.safeParse({ models: { local: [{ ...entry, baseUrl: 'ftp://x' }] } })
        .success,
    ).toBe(false);
    expect(modelsConfigSchema.safeParse({ models: { Fast: [entry] } }).success).toBe(false);
  });
});
