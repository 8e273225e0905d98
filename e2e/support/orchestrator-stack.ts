// A whole Keel stack of real processes for orchestrator e2e tests: a private redis-server, the
// orders example tool server, a gateway in front of it (the orchestrator is its service
// principal), two orchestrator replicas sharing the Redis, and scripted model servers in the
// test process (so a test can gate and inspect every model request).
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalModelServer } from '@keel/orchestrator/testing';
import type {
  LocalModelReply,
  LocalModelRequest,
  LocalModelServer,
} from '@keel/orchestrator/testing';
import { freePort, startExampleToolServer, startProcess } from './processes.js';
import type { ExampleToolServer, RunningProcess } from './processes.js';
import { startRedisServer } from './redis-server.js';
import type { RedisServer } from './redis-server.js';

/** A script for the model: a function of the request (may await a gate). */
export type ModelScript = (
  request: LocalModelRequest,
) => LocalModelReply | Promise<LocalModelReply>;

/** One orchestrator replica (a child process). */
export interface OrchestratorReplica {
  /** `http://127.0.0.1:<port>` */
  base: string;
  process: RunningProcess;
}

export interface OrchestratorStack {
  redis: RedisServer;
  orders: ExampleToolServer;
  gateway: { url: string; process: RunningProcess };
  /** Small chunks (`chunkSize` 4): `smart` (Anthropic API) and `fast` (OpenAI API) point here. */
  model: LocalModelServer;
  /** Big chunks (32 KiB): the `bulk` alias (Anthropic API) points here. */
  bulkModel: LocalModelServer;
  /** The replicas, A and B; {@link restartReplica} replaces one. */
  replicas: OrchestratorReplica[];
  /** What `model` answers; replace per test. */
  script: ModelScript;
  /** What `bulkModel` answers; replace per test. */
  bulkScript: ModelScript;
  restartReplica(index: number): Promise<OrchestratorReplica>;
  close(): Promise<void>;
}

/** The agents this stack configures. */
export const STACK_AGENTS = {
  /** `smart` (Anthropic API), tools `orders__*`. */
  support: 'support',
  /** `fast` (OpenAI API), tools `orders__*`, no handlers. */
  quick: 'quick',
  /** `bulk` (Anthropic API, 32 KiB deltas), tools `orders__*`. */
  bulk: 'bulk',
} as const;

const sha = (value: string) => createHash('sha256').update(value).digest('hex');

const LIMITS = `limits:
  maxSteps: 20
  maxToolCalls: 20
  maxTokensPerTurn: 100000000
`;

/**
 * Start the stack. `lockTtlMs` is the replicas' KEEL_TURN_LOCK_TTL_MS (default 2000).
 *
 * @example
 * const stack = await startOrchestratorStack();
 * stack.script = () => ({ text: 'hi' });
 * await fetch(`${stack.replicas[0]!.base}/v1/sessions`, { method: 'POST', ... });
 * await stack.close();
 */
export async function startOrchestratorStack(
  options: { lockTtlMs?: number } = {},
): Promise<OrchestratorStack> {
  const dir = await mkdtemp(join(tmpdir(), 'keel-e2e-stack-'));
  const serviceKey = `e2e-orchestrator-${randomUUID()}`;
  const started: Array<{ stop(): Promise<unknown> }> = [];
  const models: LocalModelServer[] = [];

  const stack = {
    script: (() => ({ text: 'No script.' })) as ModelScript,
    bulkScript: (() => ({ text: 'No script.' })) as ModelScript,
  };

  try {
    const redis = await startRedisServer();
    started.push(redis);

    const gatewayPort = await freePort();
    const orders = await startExampleToolServer('orders', {
      KEEL_JWKS_URL: `http://127.0.0.1:${gatewayPort}/.well-known/jwks.json`,
      KEEL_ISSUER: 'keel-gateway',
      REDIS_URL: undefined,
    });
    started.push(orders);

    const gatewayConfig = join(dir, 'gateway.yaml');
    await writeFile(
      gatewayConfig,
      `auth:
  principals:
    - id: orchestrator
      kind: service
      keySha256: ${sha(serviceKey)}
servers:
  - id: orders
    urls: [${orders.url}]
`,
    );
    const gatewayProcess = await startProcess({
      command: process.execPath,
      args: ['--import', 'tsx', 'packages/gateway/src/cli.ts', '--config', gatewayConfig],
      env: { PORT: String(gatewayPort), HOST: '127.0.0.1', REDIS_URL: undefined },
      readyPattern: /keel gateway listening on (http:\/\/[^\s"]+)/,
      timeoutMs: 30_000,
    });
    started.push(gatewayProcess);
    const gatewayUrl = gatewayProcess.ready![1]!;

    const model = await createLocalModelServer({
      script: (request) => stack.script(request),
      chunkSize: 4,
    });
    models.push(model);
    const bulkModel = await createLocalModelServer({
      script: (request) => stack.bulkScript(request),
      chunkSize: 32 * 1024,
    });
    models.push(bulkModel);

    const modelsFile = join(dir, 'models.yaml');
    const entry = (provider: string, name: string, baseUrl: string) => `
    - provider: ${provider}
      model: ${name}
      baseUrl: ${baseUrl}
      apiKeyEnv: KEEL_E2E_MODEL_KEY
      prices: { inputPerMTok: 3, outputPerMTok: 15 }
      contextWindow: 200000
      maxOutputTokens: 4096`;
    await writeFile(
      modelsFile,
      `models:
  smart:${entry('anthropic', 'local-smart', model.anthropicBaseUrl)}
  fast:${entry('openai', 'local-fast', model.openaiBaseUrl)}
  bulk:${entry('anthropic', 'local-bulk', bulkModel.anthropicBaseUrl)}
`,
    );
    const agentsDir = join(dir, 'agents');
    await mkdir(agentsDir);
    const agent = (name: string, alias: string) =>
      writeFile(
        join(agentsDir, `${name}.yaml`),
        `name: ${name}
prompt: You are the ${name} agent of the e2e tests.
model: ${alias}
tools: ['orders__*']
${LIMITS}`,
      );
    await Promise.all([agent('support', 'smart'), agent('quick', 'fast'), agent('bulk', 'bulk')]);

    const startReplica = async (): Promise<OrchestratorReplica> => {
      const child = await startProcess({
        command: process.execPath,
        args: [
          '--import',
          'tsx',
          'packages/orchestrator/src/cli.ts',
          '--agents',
          agentsDir,
          '--models',
          modelsFile,
        ],
        env: {
          PORT: '0',
          HOST: '127.0.0.1',
          REDIS_URL: redis.url,
          KEEL_AUTH: 'none',
          KEEL_GATEWAY_URL: gatewayUrl,
          KEEL_GATEWAY_API_KEY: serviceKey,
          KEEL_TURN_LOCK_TTL_MS: String(options.lockTtlMs ?? 2_000),
          KEEL_E2E_MODEL_KEY: 'local-model-key',
          KEEL_DEFAULT_AGENT: undefined,
          KEEL_BUDGET_USER_DAY_USD: undefined,
          KEEL_BUDGET_TENANT_MONTH_USD: undefined,
          OTEL_EXPORTER_OTLP_ENDPOINT: undefined,
          LOG_LEVEL: 'info',
        },
        readyPattern: /keel orchestrator listening on (http:\/\/[^\s"]+)/,
        timeoutMs: 30_000,
      });
      return { base: child.ready![1]!, process: child };
    };
    const replicas = await Promise.all([startReplica(), startReplica()]);

    let closed = false;
    return Object.assign(stack, {
      redis,
      orders,
      gateway: { url: gatewayUrl, process: gatewayProcess },
      model,
      bulkModel,
      replicas,
      async restartReplica(index: number) {
        const old = replicas[index];
        if (old !== undefined) await old.process.stop({ graceMs: 1_000 });
        const fresh = await startReplica();
        replicas[index] = fresh;
        return fresh;
      },
      async close() {
        if (closed) return;
        closed = true;
        await Promise.allSettled(replicas.map((r) => r.process.stop({ graceMs: 1_000 })));
        await Promise.allSettled(models.map((m) => m.close()));
        for (const s of started.reverse()) await s.stop().catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
      },
    });
  } catch (error) {
    await Promise.allSettled(models.map((m) => m.close()));
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
