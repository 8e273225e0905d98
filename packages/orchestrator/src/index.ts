/**
 * @keel/orchestrator — agent and model config so far (issue 4). It will import the shared contract from
 * `@keel/tool-sdk/contract` rather than re-declare it.
 */
export type { KeelError, KeelErrorCode } from '@keel/tool-sdk/contract';

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
