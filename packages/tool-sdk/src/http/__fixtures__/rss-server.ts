// A tool server in its own process, started by body-limits.test.ts so the test can read this
// process's RSS honestly (vitest's own heap would drown the signal). Talks to the test over IPC:
// it sends `{ type: 'listening', port }`, then answers `start` (note the baseline, sample the
// peak every few ms) and `stop` (report `{ baseline, peak, after }` in bytes).
import { pino } from 'pino';
import { z } from 'zod';
import { createToolServer, defineTool } from '../../index.js';

if (!process.send) throw new Error('rss-server.ts must be started with an IPC channel (fork)');
const send = (message: unknown) => process.send!(message);

const ping = defineTool({
  name: 'ping',
  description: 'Answer pong',
  input: z.object({}),
  handler: () => 'pong',
});
const server = createToolServer({
  id: 'rss',
  tools: [ping],
  auth: 'none',
  logger: pino({ level: 'silent' }),
});
const { port } = await server.listen(0);

const gc = (globalThis as { gc?: () => void }).gc;
let sampler: ReturnType<typeof setInterval> | undefined;
let baseline = 0;
let peak = 0;
process.on('message', (message: { type: string }) => {
  if (message.type === 'start') {
    gc?.();
    baseline = process.memoryUsage.rss();
    peak = baseline;
    sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 5);
    send({ type: 'started', baseline });
  } else if (message.type === 'stop') {
    clearInterval(sampler);
    const after = process.memoryUsage.rss();
    peak = Math.max(peak, after);
    send({ type: 'stopped', baseline, peak, after });
  } else if (message.type === 'exit') {
    void server.close({ graceMs: 0 }).then(() => process.exit(0));
  }
});
send({ type: 'listening', port });
