/**
 * `@keel/tool-sdk/http`: the HTTP plumbing every Keel MCP endpoint shares (the gateway uses it
 * too): body reading under a cap with the `bh` hash, strict JSON, JSON-RPC errors, Host/Origin
 * guards and the Node ⇄ web request adapter.
 */
export { readBody, readNodeBody, hashBody, BodyTooLargeError } from './body.js';
export type { ReadBody } from './body.js';
export { jsonRpcError, jsonRpcErrorBody } from './json-rpc.js';
export {
  LOCAL_HOSTS,
  isLoopbackHost,
  hostAllowed,
  originAllowed,
  isJsonRpcMessage,
} from './request-guards.js';
export type { JsonRpcMessage } from './request-guards.js';
export {
  fromWebRequest,
  fromNodeRequest,
  writeNodeResponse,
  textResponse,
  toWebResponse,
  TextResponse,
} from './node-adapter.js';
export type { EndpointRequest } from './node-adapter.js';
export { createLazyEventStreamReply, acceptsEventStream } from './lazy-event-stream.js';
export type { LazyEventStreamReply } from './lazy-event-stream.js';
export { parseStrictJson } from '../json/strict-json.js';
