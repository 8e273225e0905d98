/**
 * Thrown by `ToolGateway.listTools` when the gateway's catalog cannot be had (and no earlier
 * copy is kept). `callTool` never throws this: its failures come back as `{ ok: false }`.
 */
import type { KeelError } from '@keel/tool-sdk/contract';

const MARKER = Symbol.for('keel.orchestrator.ToolGatewayError');

/** The gateway could not be reached or refused the orchestrator. */
export class ToolGatewayError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly keel: KeelError;
  readonly [MARKER] = true;

  constructor(keel: KeelError, options?: { cause?: unknown }) {
    super(keel.message, options);
    this.name = 'ToolGatewayError';
    this.code = keel.code;
    this.retryable = keel.retryable;
    this.keel = keel;
  }

  /** True for a ToolGatewayError from any copy of this package. */
  static isInstance(value: unknown): value is ToolGatewayError {
    return typeof value === 'object' && value !== null && MARKER in value;
  }
}
