/**
 * The one place the gateway names the MCP SDK, so a move to the SDK's v2 packages touches
 * this file alone.
 */
export {
  LATEST_PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
  ErrorCode as JsonRpcErrorCode,
} from '@modelcontextprotocol/sdk/types.js';
