/** Constants and helpers shared by the P1 servers and load generator. */
import { createHash } from 'node:crypto';
import { z } from 'zod';

export const ISSUER = 'keel-gateway';
export const AUDIENCE = 'bench';
export const KID = 'bench-key';
export const TOOL_COUNT = 50;
export const TOOL_NAME = 'tool_0';

export const addInput = z.object({ a: z.number(), b: z.number() });
export const addOutput = z.object({ sum: z.number() });

/** base64url(sha256(body)), the `bh` claim. */
export function hashBody(body: string | Buffer): string {
  return createHash('sha256').update(body).digest('base64url');
}

/** Read a JSON value from an env var set by the parent process. */
export function envJson<T>(name: string): T {
  const raw = process.env[name];
  if (!raw) throw new Error(`${name} is not set`);
  return JSON.parse(raw) as T;
}

/** Tell the parent process the server is listening. */
export function announceReady(port: number): void {
  process.stdout.write(`READY ${port}\n`);
}
