import type { z } from 'zod';
import type { CallToolResult, ContentBlock, LoggingLevel } from '../mcp/protocol.js';
import type { KeelError } from '../contract/index.js';
import { META_KEYS } from '../contract/index.js';
import { ToolSdkError, keelError } from '../errors/tool-sdk-error.js';
import type { AnyTool, Caller, ToolContext } from '../tool/define-tool.js';
import { findProtoKey, findUnknownKey } from '../tool/strict-input.js';
import { errorResult } from './tool-result.js';

/** Default per-call time limit of a tool. */
export const DEFAULT_TOOL_TIMEOUT_MS = 10_000;
/** Default cap on a result's serialized size. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;

/** Everything a call needs from its transport. */
export interface CallOptions {
  signal: AbortSignal;
  caller: Caller | undefined;
  idempotencyKey: string | undefined;
  correlationId: string;
  /** Sends a progress notification; absent when the client did not ask for progress. */
  sendProgress?: (
    done: number,
    total: number | undefined,
    message: string | undefined,
  ) => Promise<void>;
  /** Sends a logging notification. */
  sendLog?: (level: LoggingLevel, data: unknown) => Promise<void>;
  maxOutputBytes?: number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

/** What happened, for the access log and spans. */
export interface CallOutcome {
  result: CallToolResult;
  /** `ok`, or the KeelError code. */
  outcome: string;
  error?: KeelError;
  /** Set for failures the server must log (INTERNAL, INVALID_OUTPUT). */
  logDetail?: Record<string, unknown>;
}

/**
 * Run one tool call: validate the input, run the handler under its time limit, validate the
 * output, and turn every failure into a KeelError result. Never throws.
 */
export async function executeToolCall(
  tool: AnyTool,
  rawArgs: unknown,
  options: CallOptions,
): Promise<CallOutcome> {
  const { correlationId } = options;
  const fail = (error: KeelError, logDetail?: Record<string, unknown>): CallOutcome => ({
    result: errorResult(error),
    outcome: error.code,
    error,
    ...(logDetail ? { logDetail } : {}),
  });

  const args = rawArgs ?? {};
  const protoPath = findProtoKey(args);
  if (protoPath)
    return fail(invalidInput(correlationId, protoPath, 'Key "__proto__" is not allowed'));
  const parsed = await safeParse(tool.input, args);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.map((p) => (typeof p === 'symbol' ? String(p) : p)) ?? [];
    return fail(invalidInput(correlationId, path, issue?.message ?? 'Invalid input'));
  }
  const unknownPath = findUnknownKey(args, parsed.data);
  if (unknownPath) return fail(invalidInput(correlationId, unknownPath, 'Unknown key'));

  const timeoutMs = tool.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
  const controller = new AbortController();
  const onAbort = () =>
    controller.abort(new ToolSdkError('CANCELLED', 'The client cancelled the call'));
  if (options.signal.aborted) onAbort();
  else options.signal.addEventListener('abort', onAbort, { once: true });
  const setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
  const clearTimer =
    options.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
  const timer = setTimer(
    () =>
      controller.abort(
        new ToolSdkError('TIMEOUT', `Tool "${tool.name}" did not finish within ${timeoutMs} ms`),
      ),
    timeoutMs,
  );
  const ctx: ToolContext = {
    signal: controller.signal,
    caller: options.caller,
    idempotencyKey: options.idempotencyKey,
    correlationId,
    progress: async (done, total, message) => {
      if (!controller.signal.aborted) await options.sendProgress?.(done, total, message);
    },
    log: async (level, data) => {
      if (!controller.signal.aborted) await options.sendLog?.(level, data);
    },
    fail: (code, message, details) => {
      const spec = tool.errors?.[code];
      throw new ToolSdkError(code, message, { retryable: spec?.retryable ?? false, details });
    },
  };

  let value: unknown;
  try {
    value = await new Promise<unknown>((resolve, reject) => {
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason), {
        once: true,
      });
      Promise.resolve()
        .then(() => tool.handler(parsed.data, ctx))
        .then(resolve, reject);
    });
  } catch (error) {
    if (ToolSdkError.isInstance(error)) return fail(error.toKeelError(correlationId));
    const err = error instanceof Error ? error : undefined;
    return fail(
      keelError(
        'INTERNAL',
        `Tool "${tool.name}" failed; correlation id ${correlationId}`,
        correlationId,
      ),
      { errorName: err?.name ?? typeof error, errorMessage: (err?.message ?? '').slice(0, 500) },
    );
  } finally {
    clearTimer(timer);
    options.signal.removeEventListener('abort', onAbort);
  }

  const maxBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  if (tool.output !== undefined) {
    const out = await safeParse(tool.output, value);
    if (!out.success) {
      const issue = out.error.issues[0];
      return fail(
        keelError(
          'INVALID_OUTPUT',
          `Tool "${tool.name}" returned output that breaks its output schema`,
          correlationId,
        ),
        { issuePath: issue?.path.map(String), issue: issue?.message },
      );
    }
    const text = JSON.stringify(out.data);
    if (Buffer.byteLength(text) > maxBytes) {
      return fail(
        keelError(
          'INVALID_OUTPUT',
          `Tool "${tool.name}" returned more than ${maxBytes} bytes`,
          correlationId,
          {
            details: { reason: 'too_large', limitBytes: maxBytes },
          },
        ),
        { bytes: Buffer.byteLength(text) },
      );
    }
    return {
      result: {
        content: [{ type: 'text', text }],
        structuredContent: out.data as Record<string, unknown>,
      },
      outcome: 'ok',
    };
  }
  const content = toContent(value);
  if (content === undefined) {
    return fail(
      keelError(
        'INVALID_OUTPUT',
        `Tool "${tool.name}" returned something that is not MCP content`,
        correlationId,
      ),
      { returned: typeof value },
    );
  }
  return { result: capContent(content, maxBytes), outcome: 'ok' };
}

async function safeParse(schema: z.ZodType, value: unknown) {
  try {
    return schema.safeParse(value);
  } catch {
    // Schemas with async refinements must be parsed asynchronously.
    return schema.safeParseAsync(value);
  }
}

function invalidInput(
  correlationId: string,
  path: (string | number)[],
  message: string,
): KeelError {
  const where = path.length > 0 ? path.join('.') : '(root)';
  return keelError('INVALID_INPUT', `Invalid input at ${where}: ${message}`, correlationId, {
    details: { path },
  });
}

const CONTENT_TYPES = new Set(['text', 'image', 'audio', 'resource', 'resource_link']);

function toContent(value: unknown): ContentBlock[] | undefined {
  if (typeof value === 'string') return [{ type: 'text', text: value }];
  if (!Array.isArray(value)) return undefined;
  for (const block of value) {
    if (
      typeof block !== 'object' ||
      block === null ||
      !CONTENT_TYPES.has((block as { type?: string }).type ?? '')
    ) {
      return undefined;
    }
  }
  return value as ContentBlock[];
}

/** Text beyond the cap is cut and the result flagged, so a huge output cannot flood the caller. */
function capContent(content: ContentBlock[], maxBytes: number): CallToolResult {
  let budget = maxBytes;
  let truncated = false;
  const out: ContentBlock[] = [];
  for (const block of content) {
    const size =
      block.type === 'text'
        ? Buffer.byteLength(block.text)
        : Buffer.byteLength(JSON.stringify(block));
    if (size <= budget) {
      out.push(block);
      budget -= size;
      continue;
    }
    truncated = true;
    if (block.type === 'text' && budget > 0) {
      // Cut on a UTF-8 boundary: never half a character, never over the cap.
      const bytes = Buffer.from(block.text);
      let end = budget;
      while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
      out.push({ ...block, text: bytes.subarray(0, end).toString('utf8') });
    }
    break;
  }
  if (!truncated) return { content };
  return { content: out, _meta: { [META_KEYS.truncated]: { limitBytes: maxBytes } } };
}
