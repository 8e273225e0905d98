/**
 * P2 tool server: one trivial echo tool. Without P2_JWKS_URL its auth is off (the direct
 * target); with it, it verifies the gateway's call tokens against the gateway's JWKS.
 */
import { createToolServer, defineTool } from '@keel/tool-sdk';
import { pino } from 'pino';
import { z } from 'zod';
import { announceReady } from './lib/p1-shared.js';

const jwksUrl = process.env.P2_JWKS_URL;
const issuer = process.env.P2_ISSUER ?? 'keel-gateway';

const server = createToolServer({
  id: process.env.P2_SERVER_ID ?? 'echo',
  tools: [
    defineTool({
      name: 'echo',
      description: 'Echo the text back',
      input: z.object({ text: z.string() }),
      output: z.object({ text: z.string() }),
      handler: ({ text }) => ({ text }),
    }),
  ],
  auth: jwksUrl ? { jwksUrl, issuer } : 'none',
  logger: pino({ level: 'silent' }),
});
const { port } = await server.listen(Number(process.env.P2_PORT ?? 0), '127.0.0.1');
announceReady(port);
process.on('SIGTERM', () => void server.close({ graceMs: 100 }).then(() => process.exit(0)));
