/**
 * Keys Keel reads and writes in MCP `_meta` (DESIGN.md sections 3 and 5).
 */
export const META_KEYS = {
  error: 'dev.keel/error',
  user: 'dev.keel/user',
  tenant: 'dev.keel/tenant',
  session: 'dev.keel/session',
  idempotencyKey: 'dev.keel/idempotencyKey',
  truncated: 'dev.keel/truncated',
  traceparent: 'traceparent',
} as const;
