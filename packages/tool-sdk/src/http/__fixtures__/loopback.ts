// Helpers for tests that talk to tool servers over real loopback HTTP.

/** Run `task(0..count-1)` with at most `concurrency` in flight; results in index order. */
export async function runLimited<T>(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<T>,
): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

/** A JSON-RPC `tools/call` body. */
export function toolCallBody(name: string, args: Record<string, unknown> = {}, id = 1): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args },
  });
}

/** What came back from one POST: the HTTP status and the parsed JSON body (if any). */
export interface LoopbackReply {
  status: number;
  body: {
    result?: {
      isError?: boolean;
      structuredContent?: unknown;
      content?: unknown[];
      _meta?: Record<string, unknown>;
    };
    error?: {
      code: number;
      data?: { code: string; retryable: boolean; details?: { reason?: string } };
    };
  };
  bytes: number;
}

/** POST `body` to `url` (a tool server's MCP endpoint), with a bearer token when given. */
export async function post(url: string, body: string, token?: string): Promise<LoopbackReply> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json',
  };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: 'POST', headers, body });
  const text = await response.text();
  return {
    status: response.status,
    body: text ? (JSON.parse(text) as LoopbackReply['body']) : {},
    bytes: Buffer.byteLength(text),
  };
}
