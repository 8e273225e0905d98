import type { Policies, ServerConfig, ToolOverride } from '../config/gateway-config.js';

/** What governs one tool of one server: the server's policies with the tool's overrides. */
export interface ToolPolicy {
  policies: Policies;
  /** Safe to run twice: retried after a lost reply, may fall back after one. */
  idempotent: boolean;
  /** Alternate logical servers, in order. */
  fallbacks: readonly string[];
}

/**
 * Merge a tool's overrides into its server's policies. `idempotent` comes from config only:
 * an upstream's own annotations are hints from a server the gateway does not control.
 */
export function toolPolicy(server: ServerConfig, tool: string): ToolPolicy {
  const override: ToolOverride = Object.hasOwn(server.tools, tool) ? server.tools[tool]! : {};
  const base = server.policies;
  return {
    policies: {
      ...base,
      deadlineMs: override.deadlineMs ?? base.deadlineMs,
      attemptTimeoutMs: override.attemptTimeoutMs ?? base.attemptTimeoutMs,
      retry: { ...base.retry, ...override.retry },
      rateLimits: override.rateLimits ?? base.rateLimits,
      rateLimitStoreDown: override.rateLimitStoreDown ?? base.rateLimitStoreDown,
    },
    idempotent: override.idempotent ?? false,
    fallbacks: override.fallbacks ?? server.fallbacks,
  };
}
