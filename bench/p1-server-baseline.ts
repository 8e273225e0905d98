/**
 * P1 baseline: a plain express handler doing the same work as the tool server
 * (JWT verify, typ check, body hash compare, jti replay set, JSON parse, zod parse, JSON-RPC reply).
 */
import express from 'express';
import { importJWK, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { z } from 'zod';
import {
  AUDIENCE,
  ISSUER,
  TOOL_COUNT,
  addInput,
  addOutput,
  announceReady,
  envJson,
  hashBody,
} from './lib/p1-shared.js';

const publicJwk = envJson<JWK>('P1_PUBLIC_JWK');
const key = await importJWK(publicJwk, 'EdDSA');
const tools = new Map<string, z.ZodType<{ a: number; b: number }>>(
  Array.from({ length: TOOL_COUNT }, (_, i) => [`tool_${i}`, addInput] as const),
);
const seen = new Set<string>();

const app = express();
app.post('/mcp', express.raw({ type: '*/*' }), async (req, res) => {
  const body = req.body as Buffer;
  const auth = req.headers.authorization ?? '';
  if (!auth.startsWith('Bearer ')) return void res.status(401).json({ error: 'no token' });
  const bh = hashBody(body);
  let payload;
  try {
    const verified = await jwtVerify(auth.slice(7), key, {
      algorithms: ['EdDSA'],
      issuer: ISSUER,
      audience: AUDIENCE,
      typ: 'keel-call+jwt',
    });
    payload = verified.payload;
  } catch {
    return void res.status(401).json({ error: 'bad token' });
  }
  const claimed = Buffer.from(String(payload.bh ?? ''));
  const actual = Buffer.from(bh);
  if (claimed.length !== actual.length || !timingSafeEqual(claimed, actual)) {
    return void res.status(401).json({ error: 'body hash mismatch' });
  }
  const jti = String(payload.jti ?? '');
  if (!jti || seen.has(jti)) return void res.status(401).json({ error: 'replayed' });
  seen.add(jti);
  const message = JSON.parse(body.toString('utf8')) as {
    id: number | string;
    params: { name: string; arguments: unknown };
  };
  const schema = tools.get(message.params.name);
  if (!schema) return void res.status(404).json({ error: 'unknown tool' });
  const parsed = schema.safeParse(message.params.arguments);
  if (!parsed.success) return void res.status(400).json({ error: 'invalid input' });
  const structuredContent = addOutput.parse({ sum: parsed.data.a + parsed.data.b });
  res.json({
    jsonrpc: '2.0',
    id: message.id,
    result: {
      content: [{ type: 'text', text: JSON.stringify(structuredContent) }],
      structuredContent,
    },
  });
});

const server = app.listen(0, '127.0.0.1', () => {
  announceReady((server.address() as AddressInfo).port);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
