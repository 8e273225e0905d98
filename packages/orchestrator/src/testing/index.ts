export { createLocalModelServer } from './local-model-server.js';
export type {
  LocalModelErrorReply,
  LocalModelMessage,
  LocalModelProvider,
  LocalModelReply,
  LocalModelRequest,
  LocalModelScript,
  LocalModelServer,
  LocalModelServerOptions,
  LocalModelTool,
  LocalModelToolCall,
  LocalModelToolResult,
} from './local-model-server.js';
export { demoModelScript, ROUTER_MARKER } from './demo-model.js';
