/**
 * Model call prices (DESIGN.md section 9). Prices are US dollars per million tokens, as written
 * in `models.yaml`; cache prices default to the input price when a model does not state them.
 */
import type { ModelPrices } from '../config/models-config.js';

/** Token counts of one model call, as a provider's `usage` reports them. */
export interface TokenUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheReadTokens: number;
  readonly cacheWriteTokens: number;
}

const PER = 1_000_000;

/**
 * The cost in USD of one call.
 *
 * @example
 * ```ts
 * costOf({ inputPerMTok: 3, outputPerMTok: 15 }, {
 *   inputTokens: 1_000, outputTokens: 200, cacheReadTokens: 0, cacheWriteTokens: 0,
 * }); // 0.006
 * ```
 */
export function costOf(prices: ModelPrices, usage: TokenUsage): number {
  const cacheRead = prices.cacheReadPerMTok ?? prices.inputPerMTok;
  const cacheWrite = prices.cacheWritePerMTok ?? prices.inputPerMTok;
  return (
    (tokens(usage.inputTokens) * prices.inputPerMTok +
      tokens(usage.outputTokens) * prices.outputPerMTok +
      tokens(usage.cacheReadTokens) * cacheRead +
      tokens(usage.cacheWriteTokens) * cacheWrite) /
    PER
  );
}

/**
 * What to hold before a call: estimated input tokens at the input price plus `max_tokens` at
 * the output price, the most the call can cost when the estimate holds.
 *
 * @example
 * ```ts
 * reservationFor({ inputPerMTok: 3, outputPerMTok: 15 }, 10_000, 1_000); // 0.045
 * ```
 */
export function reservationFor(
  prices: ModelPrices,
  estimatedInputTokens: number,
  maxOutputTokens: number,
): number {
  return (
    (tokens(estimatedInputTokens) * prices.inputPerMTok +
      tokens(maxOutputTokens) * prices.outputPerMTok) /
    PER
  );
}

/** A token count a provider may omit or garble counts as 0, never as NaN or negative. */
function tokens(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}
