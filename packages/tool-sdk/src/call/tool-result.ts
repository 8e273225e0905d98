import type { KeelError } from '../contract/index.js';
import { ERROR_META_KEY } from '../contract/index.js';
import type { CallToolResult } from '../mcp/protocol.js';

/**
 * A tool that ran and failed: `isError`, the KeelError at `_meta["dev.keel/error"]` and as JSON
 * text; never in `structuredContent` (DESIGN.md section 3).
 */
export function errorResult(error: KeelError): CallToolResult {
  return {
    isError: true,
    content: [{ type: 'text', text: JSON.stringify(error) }],
    _meta: { [ERROR_META_KEY]: error },
  };
}
