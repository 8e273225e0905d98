/**
 * @keel/orchestrator — agent sessions in Redis, per-step model routing, SSE streaming in the AI
 * SDK UI message stream format, budgets and traces (DESIGN.md sections 5-10).
 */
export type { KeelError, KeelErrorCode } from '@keel/tool-sdk/contract';

// The service.
export { createOrchestrator } from './orchestrator.js';
export type { Orchestrator, OrchestratorOptions } from './orchestrator.js';
export { createApp } from './http/create-app.js';
export type { AppOptions } from './http/create-app.js';
export { createTurnService } from './http/turn-service.js';
export type { TurnService, TurnServiceOptions } from './http/turn-service.js';
export { createOrchestratorMetrics } from './http/metrics.js';
export type { OrchestratorMetrics } from './http/metrics.js';

// Agent and model config (DESIGN.md section 8).
export {
  agentFileSchema,
  matchesToolGlobs,
  renderPrompt,
  templateVariables,
  toolGlobToRegExp,
} from './config/agent-config.js';
export type {
  AgentConfig,
  AgentContext,
  AgentHandler,
  AgentLimits,
} from './config/agent-config.js';
export { modelsConfigSchema } from './config/models-config.js';
export type { ModelEntry, ModelPrices, ModelsConfig } from './config/models-config.js';
export { ConfigError } from './config/config-error.js';
export type { ConfigIssue } from './config/config-issues.js';
export {
  checkModelAliases,
  loadAgentConfig,
  loadAgents,
  loadModels,
  parseAgent,
  parseModels,
} from './config/load-config.js';
export type { ParseAgentOptions } from './config/load-config.js';

// Auth (DESIGN.md section 6).
export { createAuthenticator } from './auth/create-authenticator.js';
export type { ApiKeyConfig, AuthConfig, JwtAuthConfig } from './auth/create-authenticator.js';
export { authConfigFromEnv } from './auth/auth-config-from-env.js';
export { AuthError } from './auth/auth-error.js';
export type { Authenticator, Principal } from './auth/principal.js';

// The gateway as the orchestrator sees it (DESIGN.md section 5).
export type {
  ToolCallContext,
  ToolCallOutcome,
  ToolGateway,
} from './gateway-client/tool-gateway.js';

// Sessions and turn streams (DESIGN.md section 7).
export type {
  SessionOwner,
  SessionRecord,
  SessionStore,
  StoredMessage,
  TurnStreamStore,
} from './sessions/session-store.js';
export { createMemorySessionStore } from './sessions/memory-session-store.js';
export { createMemoryTurnStreamStore } from './sessions/memory-turn-stream-store.js';
export { createRedisSessionStore } from './sessions/redis-session-store.js';
export { createRedisTurnStreamStore } from './sessions/redis-turn-stream-store.js';

// Usage, cost and budgets (DESIGN.md section 9).
export type { BudgetLimits, Meter, ModelUsage, UsageReport } from './metering/meter.js';
export { createMemoryMeter } from './metering/memory-meter.js';
export { createRedisMeter } from './metering/redis-meter.js';
export { costOf, reservationFor } from './metering/cost.js';
export { MeterUnavailableError } from './metering/meter-error.js';
export { meterRedisOptions } from './metering/redis-options.js';

// Providers (DESIGN.md section 8).
export type {
  ModelClient,
  ModelEvent,
  ModelMessage,
  ModelRequest,
  ModelToolSpec,
} from './providers/model-provider.js';
export { ModelCallError } from './providers/model-provider.js';
export { createAnthropicClient } from './providers/anthropic-client.js';
export { createOpenAIClient } from './providers/openai-client.js';
export { streamWithFallback } from './providers/fallback-client.js';
export { createModelClients } from './providers/create-model-clients.js';
export { estimateRequestTokens, fitToWindow } from './providers/token-estimate.js';

// Traces (DESIGN.md section 10).
export type { TraceSpan, TraceStore, TurnTrace } from './traces/trace.js';
export { createTraceRecorder } from './traces/trace-recorder.js';
export type { TraceRedaction } from './traces/trace-recorder.js';
export { createMemoryTraceStore } from './traces/memory-trace-store.js';
export { createRedisTraceStore } from './traces/redis-trace-store.js';
export { createTraceExporter } from './traces/otlp-export.js';
export { GEN_AI } from './traces/genai-attributes.js';

// The stream (DESIGN.md section 6).
export { uiMessageChunkSchema, isUiMessageChunk } from './stream/ui-message-chunks.js';
export type { UiMessageChunk } from './stream/ui-message-chunks.js';
export { assembleUiMessage } from './stream/assemble-ui-message.js';
export type { AssembledUiMessage, UiMessagePart } from './stream/assemble-ui-message.js';
export {
  keelApprovalDataSchema,
  keelLimitDataSchema,
  keelMessageMetadataSchema,
  keelProgressDataSchema,
  KEEL_DATA_PART_TYPES,
} from './stream/keel-data-parts.js';
export { UI_MESSAGE_STREAM_HEADERS } from './stream/sse-writer.js';

// The turn loop.
export { runTurn } from './turn/turn-runner.js';
export type { PendingTurn, TurnPlan, TurnResult, TurnStatus } from './turn/turn-runner.js';
export type { TurnEnvironment } from './turn/turn-deps.js';
