// A tool server on stdio, started by stdio.test.ts as a real child process.
import { appendFileSync } from 'node:fs';
import { z } from 'zod';
import { pino } from 'pino';
import { createToolServer, defineTool } from '../../index.js';

// Where `wait_for_cancel` records what aborted it (the test cannot see inside this process).
const eventsFile = process.env.STDIO_FIXTURE_EVENTS;

const add = defineTool({
  name: 'add',
  description: 'Add two numbers',
  input: z.object({ a: z.number(), b: z.number() }),
  output: z.object({ sum: z.number() }),
  handler: ({ a, b }) => ({ sum: a + b }),
});
const waitForCancel = defineTool({
  name: 'wait_for_cancel',
  description: 'Reports progress once, then waits until the call is aborted',
  input: z.object({}),
  timeoutMs: 30_000,
  handler: async (_input, ctx) => {
    await ctx.progress(0, 1, 'started');
    return new Promise<string>((_resolve, reject) => {
      const onAbort = () => {
        const reason = ctx.signal.reason as { code?: string } | undefined;
        if (eventsFile) appendFileSync(eventsFile, `aborted ${reason?.code ?? 'unknown'}\n`);
        reject(ctx.signal.reason);
      };
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
  },
});
const server = createToolServer({
  id: 'calc',
  tools: [add, waitForCancel],
  auth: 'none',
  logger: pino({ level: 'silent' }),
});
await server.serveStdio();
