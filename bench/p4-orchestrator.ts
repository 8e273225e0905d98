/**
 * P4/P5 orchestrator: one replica as a separate process, the production composition root
 * (`createOrchestrator`) with the Redis stores (or in-memory stores with `P_STORE=memory`), dev
 * auth, an in-process tool gateway, and one model alias pointing at the local model server.
 * The gateway offers no tools, or with `P_HOLD_TOOL=1` one tool, `hold__wait` (the agent's
 * tools are `hold__*`), whose calls wait until SIGUSR1 or the turn is stopped (P5: turns wait on a slow
 * tool). With `P_GC_HOOK=1`, SIGUSR2 forces a GC and prints `MEM <json>` (P5: the memory usage
 * plus `pendingToolCalls`), after writing a heap snapshot into `P_HEAP_SNAPSHOT_DIR` when that
 * is set (diagnosis).
 */
import { pino } from 'pino';
import { join } from 'node:path';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createAuthenticator, createOrchestrator } from '@keel/orchestrator';
import { createRedisClient, redisReady } from '@keel/tool-sdk';
import type { AgentConfig, ModelsConfig, ToolGateway } from '@keel/orchestrator';
import { announceReady } from './lib/p1-shared.js';

const need = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const store = process.env.P_STORE === 'memory' ? 'memory' : 'redis';
const holdTool = process.env.P_HOLD_TOOL === '1';

const agent: AgentConfig = {
  name: 'support',
  description: '',
  prompt: 'You are a support agent.',
  model: 'smart',
  tools: holdTool ? ['hold__*'] : [],
  limits: { maxSteps: 5, maxToolCalls: 10, maxTokensPerTurn: 4096 },
  context: { strategy: 'window' },
  approval: [],
  handlers: {},
  source: { file: 'agent.yaml', lines: {} },
};
const models: ModelsConfig = {
  file: 'models.yaml',
  models: {
    smart: [
      {
        provider: 'anthropic',
        model: 'claude-local',
        baseUrl: need('P_MODEL_URL'),
        prices: { inputPerMTok: 3, outputPerMTok: 15 },
        contextWindow: 200_000,
        maxOutputTokens: 1024,
      },
    ],
  },
};
// One gate shared by every held tool call (no per-call state here beyond the awaiting call).
let releaseTools!: () => void;
const toolGate = new Promise<void>((resolve) => (releaseTools = resolve));
let pendingToolCalls = 0;
const gateway: ToolGateway = {
  listTools: async () =>
    holdTool
      ? [
          {
            name: 'hold__wait',
            description: 'Waits until released.',
            inputSchema: { type: 'object', properties: {} },
          },
        ]
      : [],
  callTool: async (name, _input, context) => {
    if (!holdTool || name !== 'hold__wait') {
      return {
        ok: false,
        error: {
          code: 'NOT_FOUND' as const,
          message: 'no such tool',
          retryable: false,
          correlationId: 'bench',
        },
      };
    }
    pendingToolCalls++;
    try {
      await new Promise<void>((resolve) => {
        void toolGate.then(resolve);
        context.signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    } finally {
      pendingToolCalls--;
    }
    return context.signal?.aborted
      ? {
          ok: false,
          error: {
            code: 'CANCELLED',
            message: 'stopped',
            retryable: false,
            correlationId: 'bench',
          },
        }
      : { ok: true, output: { released: true } };
  },
  ping: async () => true,
  close: async () => undefined,
};

// The production client: command timeout, no offline queue (fail closed).
const redis = store === 'redis' ? createRedisClient(need('REDIS_URL'), () => undefined) : undefined;
if (redis) await redisReady(redis);

const orchestrator = createOrchestrator({
  agents: [agent],
  models,
  gateway,
  ...(redis ? { redis } : {}),
  authenticator: createAuthenticator(
    { dev: { user: 'bench-user', tenant: 'bench' } },
    { logger: pino({ level: 'silent' }) },
  ),
  logger: pino({ level: 'silent' }),
  env: { ANTHROPIC_API_KEY: 'local' },
});
const { port } = await orchestrator.listen(0);

if (process.env.P_GC_HOOK === '1') {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let snapshots = 0;
  process.on('SIGUSR2', () => {
    gc();
    gc();
    // Diagnosis only: where the memory goes (open the files in Chrome DevTools).
    if (process.env.P_HEAP_SNAPSHOT_DIR) {
      writeHeapSnapshot(
        join(process.env.P_HEAP_SNAPSHOT_DIR, `p5-${process.pid}-${++snapshots}.heapsnapshot`),
      );
    }
    process.stdout.write(`MEM ${JSON.stringify({ ...process.memoryUsage(), pendingToolCalls })}\n`);
  });
}
// SIGUSR1 releases every held tool call (not used by P5, which measures and then stops).
process.on('SIGUSR1', () => releaseTools());
announceReady(port);
process.on('SIGTERM', () => {
  setTimeout(() => process.exit(0), 3_000).unref();
  void orchestrator
    .close(100)
    .catch(() => undefined)
    .finally(() => {
      redis?.disconnect();
      process.exit(0);
    });
});
