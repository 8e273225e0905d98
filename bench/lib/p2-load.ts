/**
 * P2 load: a closed-loop ceiling (autocannon, fixed keep-alive connections) and an evenly
 * self-paced open-loop run (node:http, keep-alive Agent) whose latency counts from each
 * request's scheduled send time, so a slow reply cannot hide the queueing it causes.
 */
import autocannon from 'autocannon';
import { Agent, request } from 'node:http';

export interface Target {
  port: number;
  headers: Record<string, string>;
  body: string;
}

export interface CeilingResult {
  req_per_s: number;
  requests: number;
  non2xx: number;
  errors: number;
  rpc_errors: number;
}

export interface PacedResult {
  rate_per_s: number;
  achieved_per_s: number;
  latency_p50_ms: number;
  latency_p99_ms: number;
  requests: number;
  non2xx: number;
  errors: number;
  rpc_errors: number;
}

/** A reply that is 200 yet carries a JSON-RPC or tool error. */
function isRpcError(body: string): boolean {
  return !body.includes('"result"') || body.includes('"isError":true');
}

export async function ceiling(
  target: Target,
  opts: { connections: number; durationS?: number; amount?: number },
): Promise<CeilingResult> {
  let rpcErrors = 0;
  const result = await autocannon({
    url: `http://127.0.0.1:${target.port}`,
    connections: opts.connections,
    pipelining: 1,
    ...(opts.amount !== undefined ? { amount: opts.amount } : { duration: opts.durationS }),
    requests: [
      {
        method: 'POST',
        path: '/mcp',
        headers: target.headers,
        body: target.body,
        onResponse: (status, body) => {
          if (status === 200 && isRpcError(body)) rpcErrors++;
        },
      },
    ],
  });
  return {
    req_per_s: result.requests.average,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    rpc_errors: rpcErrors,
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** Send `rate` requests per second, evenly spaced, for `durationS`; wait for every reply. */
export async function paced(target: Target, rate: number, durationS: number): Promise<PacedResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const body = Buffer.from(target.body);
  const headers = { ...target.headers, 'content-length': String(body.length) };
  const total = Math.max(1, Math.round(rate * durationS));
  const intervalNs = 1e9 / rate;
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  let rpcErrors = 0;
  let done = 0;
  let sent = 0;
  const start = process.hrtime.bigint();

  const fire = (scheduledNs: bigint) =>
    new Promise<void>((resolve) => {
      const req = request(
        { host: '127.0.0.1', port: target.port, path: '/mcp', method: 'POST', headers, agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            latencies.push(Number(process.hrtime.bigint() - scheduledNs) / 1e6);
            if (res.statusCode !== 200) non2xx++;
            else if (isRpcError(Buffer.concat(chunks).toString())) rpcErrors++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });

  const pending: Promise<void>[] = [];
  await new Promise<void>((finish) => {
    const tick = () => {
      const elapsed = Number(process.hrtime.bigint() - start);
      // Send every request whose scheduled time has come, stamped with that time.
      while (sent < total && sent * intervalNs <= elapsed) {
        const scheduled = start + BigInt(Math.round(sent * intervalNs));
        sent++;
        pending.push(fire(scheduled).then(() => void done++));
      }
      if (sent >= total) return finish();
      const waitMs = (sent * intervalNs - elapsed) / 1e6;
      if (waitMs > 1) setTimeout(tick, Math.floor(waitMs));
      else setImmediate(tick);
    };
    tick();
  });
  await Promise.all(pending);
  const elapsedS = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return {
    rate_per_s: round(rate),
    achieved_per_s: round(done / elapsedS),
    latency_p50_ms: round(percentile(latencies, 50)),
    latency_p99_ms: round(percentile(latencies, 99)),
    requests: done,
    non2xx,
    errors,
    rpc_errors: rpcErrors,
  };
}
