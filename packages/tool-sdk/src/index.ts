/**
 * `@keel/tool-sdk`: expose business logic as typed, verified MCP tools.
 */
export { defineTool } from './tool/define-tool.js';
export type {
  Tool,
  AnyTool,
  ToolDefinition,
  ToolContext,
  ToolContent,
  ToolAnnotations,
  ErrorSpec,
  ErrorSpecs,
  Caller,
} from './tool/define-tool.js';
export { createToolServer } from './http/tool-server.js';
export type { ToolServer, ToolServerOptions, ToolServerLimits } from './http/tool-server.js';
export type { CallTokenAuthOptions } from './auth/call-token-verifier.js';
export { ToolSdkError, keelError } from './errors/tool-sdk-error.js';
export { createMemoryReplayStore } from './stores/replay-store.js';
export type { ReplayStore } from './stores/replay-store.js';
export { createRedisReplayStore } from './stores/redis-replay-store.js';
export { createRedisClient, redisReady } from './stores/redis-client.js';
export { DEFAULT_TOOL_TIMEOUT_MS, DEFAULT_MAX_OUTPUT_BYTES } from './call/execute-call.js';
export { canonicalJson } from './json/canonical-json.js';
export { errorResult } from './call/tool-result.js';
export { contextFromTraceparent, traceparentOf } from './observability/tracing.js';
