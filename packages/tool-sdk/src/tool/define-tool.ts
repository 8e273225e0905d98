import type { z } from 'zod';
import type { ContentBlock, LoggingLevel } from '../mcp/protocol.js';
import { TOOL_NAME_PATTERN, ERROR_CODE_PATTERN, isBuiltInErrorCode } from '../contract/index.js';
import { ToolSdkError } from '../errors/tool-sdk-error.js';

/** A tool's own error code, declared up front so callers (and models) can rely on it. */
export interface ErrorSpec {
  retryable: boolean;
  description: string;
}

/** The `errors` map of a tool: upper-case code → spec. */
export type ErrorSpecs = { readonly [code: Uppercase<string>]: ErrorSpec };

/** Behaviour hints, mapped to MCP's `readOnlyHint`, `destructiveHint`, ... */
export interface ToolAnnotations {
  /** The tool changes nothing. */
  readOnly?: boolean;
  /** The tool may destroy or overwrite data (only meaningful when not read-only). */
  destructive?: boolean;
  /** Calling it twice with the same arguments has no extra effect. */
  idempotent?: boolean;
  /** The tool talks to an open world of external entities. */
  openWorld?: boolean;
}

/** Who called, as proven by the verified call token. */
export interface Caller {
  /** End user id, or the calling principal's id. */
  sub: string;
  /** Tenant, when known. */
  tnt?: string;
  /** Session id, when known. */
  sid?: string;
  /** The token's issuer (the gateway). */
  iss: string;
}

/** What a handler gets besides its input. */
export interface ToolContext<E extends ErrorSpecs = ErrorSpecs> {
  /** Aborted on timeout, on client cancellation, and on shutdown after the grace period. */
  signal: AbortSignal;
  /** The verified caller; `undefined` only in the development mode without auth, and on stdio. */
  caller: Caller | undefined;
  /** The idempotency key of the logical call (`idk` claim), when it has one. */
  idempotencyKey: string | undefined;
  /** Correlates this call's reply, log lines and spans. */
  correlationId: string;
  /** Report progress; sent only when the client asked for it (a `progressToken`). */
  progress(done: number, total?: number, message?: string): Promise<void>;
  /** Send an MCP logging notification to the client. */
  log(level: LoggingLevel, data: unknown): Promise<void>;
  /** End the call with one of the tool's declared error codes. */
  fail(code: Extract<keyof E, string>, message: string, details?: unknown): never;
}

/** What a tool without an output schema returns: text, or MCP content blocks. */
export type ToolContent = string | ContentBlock[];

/** The handler's return type: the output schema's input type, or MCP content. */
export type ToolResultOf<O> = O extends z.ZodType ? z.input<O> : ToolContent;

/** Any zod object schema (the only kind MCP accepts as input or output schema). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyObjectSchema = z.ZodObject<any>;

/** The definition given to {@link defineTool}. */
export interface ToolDefinition<
  I extends AnyObjectSchema,
  O extends AnyObjectSchema | undefined,
  E extends ErrorSpecs,
> {
  /** `[a-z][a-z0-9_]{0,39}` */
  name: string;
  title?: string;
  description: string;
  /** Strict: unknown keys are rejected at every depth. */
  input: I;
  /** When set, every result is validated against it and sent as `structuredContent`. */
  output?: O;
  errors?: E;
  annotations?: ToolAnnotations;
  /** Per-call time limit; default 10 s. */
  timeoutMs?: number;
  handler: (input: z.output<I>, ctx: ToolContext<E>) => Promise<ToolResultOf<O>> | ToolResultOf<O>;
}

/** A defined tool, ready to register on a server. */
export interface Tool<
  I extends AnyObjectSchema = AnyObjectSchema,
  O extends AnyObjectSchema | undefined = AnyObjectSchema | undefined,
  E extends ErrorSpecs = ErrorSpecs,
> extends Readonly<ToolDefinition<I, O, E>> {
  readonly kind: 'keel-tool';
}

/** A tool of any schema, as a server holds it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyTool = Tool<any, any, any>;

/**
 * Define a tool. The handler's input and return types come from the schemas, and `ctx.fail`
 * accepts only the declared error codes.
 *
 * @example
 * const getOrder = defineTool({
 *   name: 'get_order',
 *   description: 'Look up one order',
 *   input: z.object({ orderId: z.string() }),
 *   output: z.object({ id: z.string(), status: z.string() }),
 *   errors: { ORDER_NOT_FOUND: { retryable: false, description: 'No such order' } },
 *   handler: async ({ orderId }, ctx) => {
 *     const order = await db.find(orderId);
 *     return order ?? ctx.fail('ORDER_NOT_FOUND', `No order ${orderId}`);
 *   },
 * });
 */
export function defineTool<
  I extends AnyObjectSchema,
  O extends AnyObjectSchema | undefined = undefined,
  const E extends ErrorSpecs = Record<never, ErrorSpec>,
>(definition: ToolDefinition<I, O, E>): Tool<I, O, E> {
  if (!TOOL_NAME_PATTERN.test(definition.name)) {
    throw new ToolSdkError(
      'INVALID_TOOL_DEFINITION',
      `Tool name "${definition.name}" must match ${TOOL_NAME_PATTERN} (lower case, digits, _; at most 40 characters)`,
    );
  }
  for (const code of Object.keys(definition.errors ?? {})) {
    if (!ERROR_CODE_PATTERN.test(code) || isBuiltInErrorCode(code)) {
      throw new ToolSdkError(
        'INVALID_TOOL_DEFINITION',
        `Tool "${definition.name}" declares error code "${code}": use an upper-case code of your own (${ERROR_CODE_PATTERN}), not a built-in one`,
      );
    }
  }
  if (definition.timeoutMs !== undefined && !(definition.timeoutMs > 0)) {
    throw new ToolSdkError(
      'INVALID_TOOL_DEFINITION',
      `Tool "${definition.name}": timeoutMs must be a positive number of milliseconds`,
    );
  }
  return Object.freeze({ ...definition, kind: 'keel-tool' as const });
}
