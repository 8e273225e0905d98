/** Closed-loop load with autocannon, one pre-signed call per request. */
import autocannon from 'autocannon';
import type { SignedCall } from './tokens.js';

export interface LoadResult {
  req_per_s: number;
  latency_p50_ms: number;
  latency_p99_ms: number;
  requests: number;
  non2xx: number;
  errors: number;
  rpc_errors: number;
  exhausted: boolean;
}

export async function runLoad(
  port: number,
  calls: SignedCall[],
  opts: { connections: number; durationS?: number; amount?: number },
): Promise<LoadResult> {
  let next = 0;
  let exhausted = false;
  let rpcErrors = 0;
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: opts.connections,
    pipelining: 1,
    ...(opts.amount !== undefined ? { amount: opts.amount } : { duration: opts.durationS }),
    requests: [
      {
        method: 'POST',
        path: '/mcp',
        setupRequest: (req) => {
          const call = calls[next++];
          if (!call) {
            exhausted = true;
            return req;
          }
          return {
            ...req,
            body: call.body,
            headers: {
              'content-type': 'application/json',
              accept: 'application/json, text/event-stream',
              authorization: `Bearer ${call.token}`,
            },
          };
        },
        onResponse: (status, body) => {
          if (status === 200 && (!body.includes('"sum":3') || body.includes('"isError":true'))) {
            rpcErrors++;
          }
        },
      },
    ],
  });
  return {
    req_per_s: result.requests.average,
    latency_p50_ms: result.latency.p50,
    latency_p99_ms: result.latency.p99,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    rpc_errors: rpcErrors,
    exhausted,
  };
}
