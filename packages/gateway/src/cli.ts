#!/usr/bin/env node
/**
 * `keel-gateway --config gateway.yaml`: run one gateway replica.
 *
 * Environment: `PORT` (default 7070), `HOST`, `REDIS_URL`, and every secret the config names
 * (`keyEnv`, `privateKeyEnv`, `tokenEnv`, `adminKeyEnv`). SIGTERM/SIGINT shut down gracefully.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadGatewayConfig } from './config/load-config.js';
import { createGateway } from './gateway.js';
import { GatewayError } from './errors/gateway-error.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || !values.config) {
    process.stdout.write('usage: keel-gateway --config gateway.yaml\n');
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const logger = pino({ name: 'keel-gateway', level: process.env.LOG_LEVEL ?? 'info' });
  let config;
  try {
    config = await loadGatewayConfig(values.config, process.env);
  } catch (error) {
    // A bad file stops start-up with the file, the field and the fix; never a stack trace.
    process.stderr.write(`${GatewayError.isInstance(error) ? error.message : String(error)}\n`);
    process.exitCode = 1;
    return;
  }
  const gateway = createGateway({ config, logger });
  // Listen first: tool servers fetch the JWKS from this gateway while it loads their catalogs.
  // /readyz answers 503 until start() is done.
  const { url } = await gateway.listen(
    config.gateway.port,
    process.env.HOST ?? config.gateway.host,
  );
  await gateway.start();
  logger.info({ url }, `keel gateway listening on ${url}`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void gateway.close({ graceMs: 10_000 }).then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
