#!/usr/bin/env node
/**
 * `keel-orchestrator --agents ./agents --models ./models.yaml`: run one orchestrator replica.
 * Environment: see {@link CLI_USAGE}. SIGTERM/SIGINT let running turns finish (10 s), then
 * mark the rest interrupted.
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { authConfigFromEnv } from './auth/auth-config-from-env.js';
import { createAuthenticator } from './auth/create-authenticator.js';
import { CLI_USAGE, cliConfig, CliConfigError, type CliConfig } from './cli-config.js';
import { ConfigError } from './config/config-error.js';
import { checkModelAliases, loadAgents, loadModels } from './config/load-config.js';
import { createMcpToolGateway } from './gateway-client/mcp-tool-gateway.js';
import { meterRedisOptions } from './metering/redis-options.js';
import { createOrchestrator } from './orchestrator.js';

const logger = pino({ name: 'keel-orchestrator', level: process.env.LOG_LEVEL ?? 'info' });

/** REDIS_URL, else a Redis answering on 127.0.0.1:6379, else none (in memory). */
async function connectRedis(config: CliConfig): Promise<Redis | undefined> {
  const url = config.redisUrl ?? 'redis://127.0.0.1:6379';
  const redis = new Redis(
    url,
    // Request paths answer within ~0.4 s when Redis cannot (S23: <= 600 ms in all).
    meterRedisOptions({ lazyConnect: true, commandTimeout: 350 }),
  );
  redis.on('error', () => undefined); // reconnects are logged by readiness, not per attempt
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (error) {
    redis.disconnect();
    if (config.redisUrl !== undefined) {
      throw new CliConfigError(
        `REDIS_URL=${config.redisUrl} does not answer (${error instanceof Error ? error.message : 'error'}) — start Redis or fix REDIS_URL`,
      );
    }
    return undefined;
  }
}

function fail(message: string): void {
  process.stderr.write(`${message}\n`);
  process.exitCode = 1;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      agents: { type: 'string', short: 'a' },
      models: { type: 'string', short: 'm' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(CLI_USAGE);
    return;
  }
  let config: CliConfig;
  try {
    config = cliConfig(values, process.env);
  } catch (error) {
    process.stderr.write(CLI_USAGE);
    fail(error instanceof Error ? error.message : String(error));
    process.exitCode = 2;
    return;
  }
  try {
    const [agents, models] = await Promise.all([
      loadAgents(config.agentsDir),
      loadModels(config.modelsFile),
    ]);
    checkModelAliases(agents, models);
    const authenticator = createAuthenticator(authConfigFromEnv(process.env), { logger });
    const redis = await connectRedis(config);
    if (redis === undefined) {
      logger.warn(
        'no REDIS_URL and no Redis on 127.0.0.1:6379: sessions, streams, usage and traces are kept in memory in this one process (development only)',
      );
    }
    if (config.gatewayApiKey === undefined) {
      throw new CliConfigError(
        'KEEL_GATEWAY_API_KEY is not set — give the orchestrator the service-principal API key the gateway config lists for it',
      );
    }
    const gateway = createMcpToolGateway({ url: config.gatewayUrl, apiKey: config.gatewayApiKey });
    const orchestrator = createOrchestrator({
      agents,
      models,
      gateway,
      authenticator,
      logger,
      budgets: config.budgets,
      redaction: config.redaction,
      ...(redis === undefined ? {} : { redis }),
      ...(config.defaultAgent === undefined ? {} : { defaultAgent: config.defaultAgent }),
      ...(config.lockTtlMs === undefined ? {} : { lockTtlMs: config.lockTtlMs }),
    });
    const { url } = await orchestrator.listen(config.port, config.host);
    logger.info(
      { url, agents: agents.map((a) => a.name), store: redis === undefined ? 'memory' : 'redis' },
      `keel orchestrator listening on ${url}`,
    );
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal, running: orchestrator.turns.running }, 'shutting down');
      void orchestrator
        .close(config.shutdownGraceMs)
        .then(() => redis?.quit())
        .finally(() => process.exit(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  } catch (error) {
    if (error instanceof ConfigError || error instanceof CliConfigError) fail(error.message);
    else
      fail(
        `keel-orchestrator could not start: ${error instanceof Error ? error.message : String(error)}`,
      );
  }
}

void main();
