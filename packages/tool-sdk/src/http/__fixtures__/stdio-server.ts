// A tool server on stdio, started by stdio.test.ts as a real child process.
import { z } from 'zod';
import { pino } from 'pino';
import { createToolServer, defineTool } from '../../index.js';

const add = defineTool({
  name: 'add',
  description: 'Add two numbers',
  input: z.object({ a: z.number(), b: z.number() }),
  output: z.object({ sum: z.number() }),
  handler: ({ a, b }) => ({ sum: a + b }),
});
const server = createToolServer({
  id: 'calc',
  tools: [add],
  auth: 'none',
  logger: pino({ level: 'silent' }),
});
await server.serveStdio();
