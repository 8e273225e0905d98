/** P1 candidate: a Keel tool server with 50 trivial tools and call-token auth on. */
import { createToolServer, defineTool } from '@keel/tool-sdk';
import type { JWK } from 'jose';
import { pino } from 'pino';
import {
  AUDIENCE,
  ISSUER,
  TOOL_COUNT,
  addInput,
  addOutput,
  announceReady,
  envJson,
} from './lib/p1-shared.js';

const publicJwk = envJson<JWK>('P1_PUBLIC_JWK');

const tools = Array.from({ length: TOOL_COUNT }, (_, i) =>
  defineTool({
    name: `tool_${i}`,
    description: `Add two numbers (#${i})`,
    input: addInput,
    output: addOutput,
    handler: ({ a, b }) => ({ sum: a + b }),
  }),
);

const server = createToolServer({
  id: AUDIENCE,
  tools,
  auth: { issuer: ISSUER, algorithm: 'EdDSA', publicKey: publicJwk },
  logger: pino({ level: 'silent' }),
});
const { port } = await server.listen(0, '127.0.0.1');
announceReady(port);
process.on('SIGTERM', () => void server.close({ graceMs: 100 }).then(() => process.exit(0)));
