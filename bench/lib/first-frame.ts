/**
 * Streamed-reply timing over node:http: the time from a request's start to the first response
 * chunk containing a marker (a text delta), and to the end of the body.
 */
import { request } from 'node:http';
import type { Agent } from 'node:http';

export interface StreamTiming {
  status: number;
  /** ms from request start to the first chunk containing the marker; NaN when never seen. */
  first_ms: number;
  total_ms: number;
  body: string;
}

export function timeStream(opts: {
  port: number;
  path: string;
  headers: Record<string, string>;
  body: string;
  marker: string;
  agent: Agent;
}): Promise<StreamTiming> {
  const body = Buffer.from(opts.body);
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    let first = NaN;
    const req = request(
      {
        host: '127.0.0.1',
        port: opts.port,
        path: opts.path,
        method: 'POST',
        headers: { ...opts.headers, 'content-length': String(body.length) },
        agent: opts.agent,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (Number.isNaN(first)) {
            // The marker may straddle two chunks: look at the tail of what came before too.
            const window = text.slice(-opts.marker.length) + chunk;
            if (window.includes(opts.marker)) {
              first = Number(process.hrtime.bigint() - start) / 1e6;
            }
          }
          text += chunk;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            first_ms: first,
            total_ms: Number(process.hrtime.bigint() - start) / 1e6,
            body: text,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** POST JSON and parse the JSON reply. */
export function postJson(
  port: number,
  path: string,
  headers: Record<string, string>,
  payload: unknown,
  agent: Agent,
): Promise<{ status: number; json: unknown }> {
  const body = Buffer.from(JSON.stringify(payload));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        headers: {
          ...headers,
          'content-type': 'application/json',
          'content-length': String(body.length),
        },
        agent,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown });
          } catch {
            resolve({ status: res.statusCode ?? 0, json: text });
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
