import type { KeelError } from '../contract/index.js';
import { textResponse } from './node-adapter.js';

/** A JSON-RPC error response (non-2xx bodies carry the KeelError at `error.data`). */
export function jsonRpcError(
  status: number,
  code: number,
  error: KeelError,
  id: string | number | null = null,
  headers: Record<string, string> = {},
): Response {
  return textResponse(
    JSON.stringify({ jsonrpc: '2.0', id, error: { code, message: error.message, data: error } }),
    { status, headers: { 'content-type': 'application/json', ...headers } },
  );
}

/** A JSON-RPC error inside a 200 reply (unknown tool, unknown method). */
export function jsonRpcErrorBody(
  id: string | number | null,
  code: number,
  message: string,
): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } });
}
