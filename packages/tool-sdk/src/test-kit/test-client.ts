import type { CallToolResult } from '../mcp/protocol.js';
import type { KeelError } from '../contract/index.js';
import { ERROR_META_KEY } from '../contract/index.js';
import type { TestSigner, TestTokenClaims } from './test-signer.js';

/** Anything with a fetch-style handler: a ToolServer, or `globalThis` with a base URL. */
export interface FetchTarget {
  fetch(request: Request): Promise<Response>;
}

/** One JSON-RPC exchange as the client saw it. */
export interface TestReply {
  status: number;
  /** The final JSON-RPC message (result or error). */
  message: {
    id?: unknown;
    result?: unknown;
    error?: { code: number; message: string; data?: KeelError };
  };
  /** Notifications that came before it (progress, logging). */
  notifications: { method: string; params: Record<string, unknown> }[];
}

/** A tool call's outcome, unpacked. */
export interface TestCallResult {
  result: CallToolResult | undefined;
  /** The KeelError when the tool failed (`isError`) or the request was refused. */
  error: KeelError | undefined;
  structuredContent: unknown;
  notifications: TestReply['notifications'];
  status: number;
}

/** Options of {@link createTestClient}. */
export interface TestClientOptions {
  url?: string;
  /** Sign each request as the gateway would; leave out for servers with auth off. */
  signer?: TestSigner;
  /** Default claims (at least `aud`) when signing. */
  claims?: TestTokenClaims;
}

/**
 * An in-memory MCP client for a tool server: each call goes through `server.fetch`, signed when a
 * signer is given.
 *
 * @example
 * const client = createTestClient(server, { signer, claims: { aud: 'orders', sub: 'u1' } });
 * const { structuredContent } = await client.callTool('get_order', { orderId: 'ord_1001' });
 */
export function createTestClient(target: FetchTarget, options: TestClientOptions = {}) {
  const url = options.url ?? 'http://localhost/mcp';
  let nextId = 1;

  async function request(
    method: string,
    params: Record<string, unknown> | undefined,
    claims: Partial<TestTokenClaims> = {},
  ): Promise<TestReply> {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: nextId++,
      method,
      ...(params ? { params } : {}),
    });
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      host: new URL(url).host,
    };
    if (options.signer) {
      const token = await options.signer.sign(body, {
        ...options.claims,
        ...claims,
      } as TestTokenClaims);
      headers.authorization = `Bearer ${token}`;
    }
    const response = await target.fetch(new Request(url, { method: 'POST', headers, body }));
    return readReply(response);
  }

  return {
    request,
    listTools: async () =>
      ((await request('tools/list', {})).message.result as { tools: { name: string }[] }).tools,
    async callTool(
      name: string,
      args: Record<string, unknown> = {},
      call: { claims?: Partial<TestTokenClaims>; progressToken?: string | number } = {},
    ): Promise<TestCallResult> {
      const params: Record<string, unknown> = { name, arguments: args };
      if (call.progressToken !== undefined) params._meta = { progressToken: call.progressToken };
      const reply = await request('tools/call', params, call.claims);
      const result = reply.message.result as CallToolResult | undefined;
      const error = result?.isError
        ? (result._meta?.[ERROR_META_KEY] as KeelError)
        : reply.message.error?.data;
      return {
        result,
        error,
        structuredContent: result?.structuredContent,
        notifications: reply.notifications,
        status: reply.status,
      };
    },
  };
}

/** Read a JSON or SSE reply into its final message and notifications. */
export async function readReply(response: Response): Promise<TestReply> {
  const text = await response.text();
  const notifications: TestReply['notifications'] = [];
  if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    return { status: response.status, message: text ? JSON.parse(text) : {}, notifications };
  }
  let message: TestReply['message'] = {};
  for (const event of text.split('\n\n')) {
    const data = event
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trimStart())
      .join('\n');
    if (!data) continue;
    const msg = JSON.parse(data);
    if ('method' in msg && !('id' in msg)) notifications.push(msg);
    else message = msg;
  }
  return { status: response.status, message, notifications };
}
