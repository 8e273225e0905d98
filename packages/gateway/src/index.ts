/**
 * @keel/gateway — one MCP endpoint in front of many tool servers, with per-call policies and
 * signed upstream calls. See README.md.
 */
export { createGateway } from './gateway.js';
export type { Gateway, GatewayOptions } from './gateway.js';
export { loadGatewayConfig, parseGatewayConfig } from './config/load-config.js';
export type { ConfigEnv } from './config/load-config.js';
export { gatewayConfigSchema } from './config/gateway-config.js';
export type {
  GatewayConfig,
  Policies,
  PrincipalConfig,
  ServerConfig,
  SigningKeyConfig,
  ToolOverride,
  UpstreamAuth,
} from './config/gateway-config.js';
export { GatewayError } from './errors/gateway-error.js';
export type { KeelError, KeelErrorCode } from '@keel/tool-sdk/contract';
