/**
 * P4/P5 model server: the local model server (Anthropic Messages API, streamed by the real wire
 * format) in its own process. Every request gets the same ~200-character reply, except:
 * - a `[hold]` message: the reply waits until this process is stopped (P5, model in flight);
 * - a `[hold-tool]` message with no tool result yet: the reply is a call of the tool
 *   `hold__wait` (P5, the model call completes and the turn then waits on that tool).
 * SIGUSR2 prints `RECEIVED <requests> <held> <tool calls answered>`.
 */
import { createLocalModelServer } from '@keel/orchestrator/testing';
import { announceReady } from './lib/p1-shared.js';

export const REPLY_TEXT =
  'Thanks for reaching out. Your order shipped this morning and should arrive within two ' +
  'business days. You can follow it from the tracking link in your confirmation email anytime.';

const never = new Promise<void>(() => undefined);
let received = 0;
let held = 0;
let toolCalls = 0;
const server = await createLocalModelServer({
  script: async (request) => {
    received++;
    if (request.messages.some((m) => m.text.includes('[hold]'))) {
      held++;
      await never;
    }
    if (
      request.messages.some((m) => m.text.includes('[hold-tool]')) &&
      !request.messages.some((m) => m.toolResults.length > 0)
    ) {
      toolCalls++;
      return {
        toolCalls: [{ name: 'hold__wait', arguments: {} }],
        usage: { inputTokens: 40, outputTokens: 10 },
      };
    }
    return { text: REPLY_TEXT, usage: { inputTokens: 40, outputTokens: 50 } };
  },
});
// The server keeps every request it saw; drop them so a long run does not grow this process.
setInterval(() => {
  (server.requests as unknown[]).length = 0;
}, 1_000).unref();
process.on('SIGUSR2', () => process.stdout.write(`RECEIVED ${received} ${held} ${toolCalls}\n`));
announceReady(Number(new URL(server.url).port));
process.on('SIGTERM', () => {
  void server.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
});
