/**
 * `keel-orchestrator` settings from arguments and environment (DESIGN.md section 11). Every
 * problem names the variable or flag and the fix.
 */
import type { TraceRedaction } from './traces/trace-recorder.js';

export interface CliConfig {
  readonly agentsDir: string;
  readonly modelsFile: string;
  readonly port: number;
  readonly host: string;
  /** Absent: try Redis on 127.0.0.1:6379, else run in memory (one process). */
  readonly redisUrl?: string;
  readonly gatewayUrl: string;
  readonly gatewayApiKey?: string;
  readonly defaultAgent?: string;
  readonly budgets: { userDayUsd?: number; tenantMonthUsd?: number };
  readonly redaction: TraceRedaction;
  readonly shutdownGraceMs: number;
  /** `KEEL_TURN_LOCK_TTL_MS`: how soon a dead process's turn is taken over. Default 30 s. */
  readonly lockTtlMs?: number;
}

export class CliConfigError extends Error {
  override readonly name = 'CliConfigError';
  readonly code = 'INVALID_CONFIG';
}

type Env = Readonly<Record<string, string | undefined>>;

function positiveNumber(env: Env, name: string): number | undefined {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new CliConfigError(`${name}="${raw}" is not a positive number — e.g. ${name}=5`);
  }
  return value;
}

export const CLI_USAGE = `usage: keel-orchestrator --agents ./agents --models ./models.yaml

environment:
  PORT                          port (default 7080)
  HOST                          interface (default 127.0.0.1)
  REDIS_URL                     Redis for sessions, streams, usage, budgets, traces
                                (default: 127.0.0.1:6379 if it answers, else in memory)
  KEEL_GATEWAY_URL              the gateway's MCP endpoint (default http://127.0.0.1:7070/mcp)
  KEEL_GATEWAY_API_KEY          the orchestrator's service-principal key at the gateway (required)
  KEEL_DEFAULT_AGENT            agent of sessions opened by POST /v1/chat (default: first)
  KEEL_BUDGET_USER_DAY_USD      budget per user per day
  KEEL_BUDGET_TENANT_MONTH_USD  budget per tenant per month
  KEEL_REDACT                   prompts,tools — keep prompts / tool payloads out of traces
  KEEL_AUTH_JWKS_URL, KEEL_AUTH_ISSUER, KEEL_AUTH_AUDIENCE, KEEL_AUTH_TENANT_CLAIM,
  KEEL_API_KEYS_FILE, KEEL_AUTH=none (development only)
  ANTHROPIC_API_KEY, OPENAI_API_KEY (or the apiKeyEnv that models.yaml names)
  KEEL_TURN_LOCK_TTL_MS         turn lock TTL in ms (default 30000): how soon another replica
                                closes a turn whose process died
  OTEL_EXPORTER_OTLP_ENDPOINT   export traces over OTLP/HTTP
`;

export function cliConfig(args: { agents?: string; models?: string }, env: Env): CliConfig {
  if (args.agents === undefined || args.models === undefined) {
    throw new CliConfigError(
      `--agents and --models are required — e.g. keel-orchestrator --agents ./agents --models ./models.yaml`,
    );
  }
  const portRaw = env.PORT?.trim() || '7080';
  const port = Number(portRaw);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new CliConfigError(`PORT="${portRaw}" is not a port — use a number from 0 to 65535`);
  }
  const gatewayUrl = env.KEEL_GATEWAY_URL?.trim() || 'http://127.0.0.1:7070/mcp';
  try {
    const url = new URL(gatewayUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
  } catch {
    throw new CliConfigError(
      `KEEL_GATEWAY_URL="${gatewayUrl}" is not an http(s) URL — e.g. http://127.0.0.1:7070/mcp`,
    );
  }
  const redact = (env.KEEL_REDACT ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = redact.filter((r) => r !== 'prompts' && r !== 'tools');
  if (unknown.length > 0) {
    throw new CliConfigError(
      `KEEL_REDACT="${env.KEEL_REDACT}" names ${unknown.join(', ')} — use prompts, tools or both (comma-separated)`,
    );
  }
  const userDayUsd = positiveNumber(env, 'KEEL_BUDGET_USER_DAY_USD');
  const tenantMonthUsd = positiveNumber(env, 'KEEL_BUDGET_TENANT_MONTH_USD');
  const lockTtlMs = positiveNumber(env, 'KEEL_TURN_LOCK_TTL_MS');
  const redisUrl = env.REDIS_URL?.trim();
  const apiKey = env.KEEL_GATEWAY_API_KEY?.trim();
  const defaultAgent = env.KEEL_DEFAULT_AGENT?.trim();
  return {
    agentsDir: args.agents,
    modelsFile: args.models,
    port,
    host: env.HOST?.trim() || '127.0.0.1',
    ...(redisUrl ? { redisUrl } : {}),
    gatewayUrl,
    ...(apiKey ? { gatewayApiKey: apiKey } : {}),
    ...(defaultAgent ? { defaultAgent } : {}),
    budgets: {
      ...(userDayUsd === undefined ? {} : { userDayUsd }),
      ...(tenantMonthUsd === undefined ? {} : { tenantMonthUsd }),
    },
    redaction: { prompts: redact.includes('prompts'), toolPayloads: redact.includes('tools') },
    shutdownGraceMs: 10_000,
    ...(lockTtlMs === undefined ? {} : { lockTtlMs: Math.max(1_000, Math.round(lockTtlMs)) }),
  };
}
