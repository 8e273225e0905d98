/**
 * The orchestrator's view of the gateway (DESIGN.md section 5): an MCP client authenticated as a
 * service principal, passing end-user context in `params._meta`.
 */
import type { KeelError } from '@keel/tool-sdk/contract';
import type { ModelToolSpec } from '../providers/model-provider.js';

export interface ToolCallContext {
  readonly user: string;
  readonly tenant: string;
  readonly sessionId: string;
  /** Made and stored before dispatch; the same key on a retried dispatch. */
  readonly idempotencyKey: string;
  /** W3C traceparent of the tool-call span. */
  readonly traceparent?: string;
  readonly signal?: AbortSignal;
  /** Upstream progress relayed by the gateway. */
  readonly onProgress?: (progress: number, total?: number, message?: string) => void;
}

export type ToolCallOutcome =
  | { readonly ok: true; readonly output: unknown }
  /** The KeelError from the tool result's `_meta["dev.keel/error"]`, or one made for a transport failure. */
  | { readonly ok: false; readonly error: KeelError };

export interface ToolGateway {
  /** The gateway's catalog (cached briefly; refreshed on list_changed). */
  listTools(signal?: AbortSignal): Promise<ModelToolSpec[]>;
  /** Never throws for tool or transport failures: they come back as `{ ok: false }`. */
  callTool(name: string, input: unknown, context: ToolCallContext): Promise<ToolCallOutcome>;
  /** Gateway reachable (for /readyz). */
  ping(signal?: AbortSignal): Promise<boolean>;
  close(): Promise<void>;
}
