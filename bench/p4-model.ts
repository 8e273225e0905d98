/**
 * P4/P5 model server: the local model server (Anthropic Messages API, streamed by the real wire
 * format) in its own process. Every request gets the same ~200-character reply. With
 * `P_MODEL_HOLD=1` each reply waits (P5: turns stay open) until this process is stopped.
 */
import { createLocalModelServer } from '@keel/orchestrator/testing';
import { announceReady } from './lib/p1-shared.js';

export const REPLY_TEXT =
  'Thanks for reaching out. Your order shipped this morning and should arrive within two ' +
  'business days. You can follow it from the tracking link in your confirmation email anytime.';

const never = new Promise<void>(() => undefined);
let received = 0;
let held = 0;
const server = await createLocalModelServer({
  script: async (request) => {
    received++;
    if (request.messages.some((m) => m.text.includes('[hold]'))) {
      held++;
      await never;
    }
    return { text: REPLY_TEXT, usage: { inputTokens: 40, outputTokens: 50 } };
  },
});
// The server keeps every request it saw; drop them so a long run does not grow this process.
setInterval(() => {
  (server.requests as unknown[]).length = 0;
}, 1_000).unref();
process.on('SIGUSR2', () => process.stdout.write(`RECEIVED ${received} ${held}\n`));
announceReady(Number(new URL(server.url).port));
process.on('SIGTERM', () => {
  void server.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
});
