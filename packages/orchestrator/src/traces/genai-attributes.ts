/**
 * Span attribute names (DESIGN.md section 10). The `gen_ai.*` names follow the OpenTelemetry
 * GenAI semantic conventions; `keel.*` names are Keel's own where no convention exists.
 */

/** OpenTelemetry GenAI semantic-convention attribute names. */
export const GEN_AI = {
  /** `'chat'` for a model call, `'execute_tool'` for a tool call. */
  OPERATION_NAME: 'gen_ai.operation.name',
  /** Older name of the provider attribute (`anthropic`, `openai`); set alongside PROVIDER_NAME. */
  SYSTEM: 'gen_ai.system',
  PROVIDER_NAME: 'gen_ai.provider.name',
  REQUEST_MODEL: 'gen_ai.request.model',
  REQUEST_MAX_TOKENS: 'gen_ai.request.max_tokens',
  RESPONSE_MODEL: 'gen_ai.response.model',
  RESPONSE_FINISH_REASONS: 'gen_ai.response.finish_reasons',
  USAGE_INPUT_TOKENS: 'gen_ai.usage.input_tokens',
  USAGE_OUTPUT_TOKENS: 'gen_ai.usage.output_tokens',
  TOOL_NAME: 'gen_ai.tool.name',
  TOOL_CALL_ID: 'gen_ai.tool.call.id',
} as const;

/** Values of `gen_ai.operation.name` that Keel records. */
export const GEN_AI_OPERATIONS = {
  CHAT: 'chat',
  EXECUTE_TOOL: 'execute_tool',
} as const;

/** Keel's own attribute names. */
export const KEEL_ATTRIBUTES = {
  COST_USD: 'keel.cost_usd',
  /** Time to first token, ms. */
  TTFT_MS: 'keel.ttft_ms',
  FALLBACK_ATTEMPTS: 'keel.fallback_attempts',
  SESSION_ID: 'keel.session_id',
  TURN_ID: 'keel.turn_id',
} as const;

/** OpenTelemetry general attribute for a failed operation's error class (our KeelError code). */
export const ERROR_TYPE = 'error.type';

/** `service.name` of the orchestrator's OTLP resource. */
export const ORCHESTRATOR_SERVICE_NAME = 'keel-orchestrator';
