/**
 * The only place outside `mcp/` that names the MCP SDK's types and constants goes through here,
 * so a move to the SDK's v2 packages touches this folder alone.
 */
export {
  LATEST_PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
  ErrorCode as JsonRpcErrorCode,
} from '@modelcontextprotocol/sdk/types.js';
export type {
  CallToolResult,
  ContentBlock,
  Tool as McpToolDefinition,
  LoggingLevel,
  JSONRPCMessage,
} from '@modelcontextprotocol/sdk/types.js';
