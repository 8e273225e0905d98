import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  SetLevelRequestSchema,
  McpError,
  ErrorCode,
} from '@modelcontextprotocol/sdk/types.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { ToolRegistry } from '../tool/tool-registry.js';
import type { Caller } from '../tool/define-tool.js';

/** How the SDK server runs a tool call: the same pipeline as the HTTP fast path. */
export type SdkCallHandler = (
  name: string,
  args: unknown,
  extra: {
    signal: AbortSignal;
    caller: Caller | undefined;
    idempotencyKey: string | undefined;
    progressToken: string | number | undefined;
    sendNotification: (method: string, params: Record<string, unknown>) => Promise<void>;
  },
) => Promise<CallToolResult>;

export interface SdkServerInfo {
  name: string;
  version: string;
}

/** Our view of who called, handed through the SDK as `authInfo.extra`. */
export interface SdkAuthExtra {
  caller: Caller | undefined;
  idempotencyKey: string | undefined;
}

/** A low-level SDK server wired to the registry. Cheap to build: schemas are precomputed. */
export function createSdkServer(
  info: SdkServerInfo,
  registry: ToolRegistry,
  call: SdkCallHandler,
): Server {
  const server = new Server(info, { capabilities: { tools: { listChanged: false }, logging: {} } });
  server.setRequestHandler(ListToolsRequestSchema, () => registry.listResult);
  server.setRequestHandler(SetLevelRequestSchema, () => ({}));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const name = request.params.name;
    if (!registry.get(name)) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);
    const auth = extra.authInfo?.extra as SdkAuthExtra | undefined;
    return call(name, request.params.arguments, {
      signal: extra.signal,
      caller: auth?.caller,
      idempotencyKey: auth?.idempotencyKey,
      progressToken: request.params._meta?.progressToken,
      sendNotification: (method, params) =>
        extra.sendNotification({ method, params } as Parameters<typeof extra.sendNotification>[0]),
    });
  });
  return server;
}

/**
 * Serve one stateless Streamable HTTP request through the SDK (initialize, ping, notifications,
 * GET/DELETE, anything the fast path leaves alone).
 */
export async function handleWithSdk(
  server: Server,
  request: Request,
  parsedBody: unknown,
  auth: SdkAuthExtra,
): Promise<Response> {
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
  });
  await server.connect(transport);
  const response = await transport.handleRequest(request, {
    parsedBody,
    authInfo: {
      token: '',
      clientId: auth.caller?.sub ?? 'anonymous',
      scopes: [],
      extra: { ...auth },
    },
  });
  return response;
}

/** Serve the tools over stdio (local IDE use; no call tokens there). */
export async function serveSdkStdio(server: Server): Promise<void> {
  await server.connect(new StdioServerTransport());
}
