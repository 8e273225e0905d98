import { describe, expect, it } from 'vitest';
import { cliConfig, CliConfigError } from './cli-config.js';

const args = { agents: './agents', models: './models.yaml' };

describe('cliConfig', () => {
  it('has the documented defaults', () => {
    expect(cliConfig(args, {})).toEqual({
      agentsDir: './agents',
      modelsFile: './models.yaml',
      port: 7080,
      host: '127.0.0.1',
      gatewayUrl: 'http://127.0.0.1:7070/mcp',
      budgets: {},
      redaction: { prompts: false, toolPayloads: false },
      shutdownGraceMs: 10_000,
    });
  });

  it('reads the environment', () => {
    const config = cliConfig(args, {
      PORT: '9000',
      REDIS_URL: 'redis://r:6379',
      KEEL_GATEWAY_URL: 'http://gw:7070/mcp',
      KEEL_GATEWAY_API_KEY: 'k',
      KEEL_BUDGET_USER_DAY_USD: '2.5',
      KEEL_BUDGET_TENANT_MONTH_USD: '100',
      KEEL_REDACT: 'prompts, tools',
      KEEL_DEFAULT_AGENT: 'support',
    });
    expect(config).toMatchObject({
      port: 9000,
      redisUrl: 'redis://r:6379',
      gatewayUrl: 'http://gw:7070/mcp',
      gatewayApiKey: 'k',
      defaultAgent: 'support',
      budgets: { userDayUsd: 2.5, tenantMonthUsd: 100 },
      redaction: { prompts: true, toolPayloads: true },
    });
  });

  it.each([
    [{}, {}, /--agents and --models are required/],
    [args, { PORT: 'abc' }, /PORT="abc" is not a port/],
    [args, { KEEL_GATEWAY_URL: 'ftp://x' }, /KEEL_GATEWAY_URL=.*e\.g\. http/],
    [
      args,
      { KEEL_BUDGET_USER_DAY_USD: '-1' },
      /KEEL_BUDGET_USER_DAY_USD="-1" is not a positive number/,
    ],
    [args, { KEEL_REDACT: 'everything' }, /KEEL_REDACT=.*use prompts, tools/],
  ])('refuses bad settings naming the variable and the fix (%#)', (a, env, message) => {
    expect(() => cliConfig(a, env)).toThrow(CliConfigError);
    expect(() => cliConfig(a, env)).toThrow(message);
  });
});
