/**
 * Records one turn as a trace (DESIGN.md section 10): turn → step → model attempt / tool call
 * spans, with W3C ids so the same trace id crosses every hop in `traceparent`.
 */
import { randomBytes } from 'node:crypto';
import { KEEL_ATTRIBUTES } from './genai-attributes.js';
import type { SpanKind, TraceSpan, TurnTrace } from './trace.js';

export type AttributeValue = string | number | boolean | readonly string[];
export type SpanAttributes = Readonly<Record<string, AttributeValue>>;

/** Id source; tests inject a deterministic one. */
export interface TraceIdGenerator {
  /** 32 lower-case hex chars, not all zero. */
  traceId(): string;
  /** 16 lower-case hex chars, not all zero. */
  spanId(): string;
}

export interface TraceRedaction {
  /** Redact prompts and model output: payload keys in {@link PROMPT_PAYLOAD_KEYS}. */
  readonly prompts: boolean;
  /**
   * Redact tool input and output: payload keys in {@link TOOL_PAYLOAD_KEYS} on tool-call and
   * approval spans, and tool data nested in any payload (tool-call parts' `input`, tool-result
   * parts' `content`, a step response's tool calls).
   */
  readonly toolPayloads: boolean;
}

export interface TraceRecorderOptions {
  readonly sessionId: string;
  readonly turnId: string;
  readonly owner: { readonly user: string; readonly tenant: string };
  /** Epoch ms. */
  readonly now?: () => number;
  readonly ids?: TraceIdGenerator;
  readonly redact?: TraceRedaction;
  /**
   * An incoming W3C `traceparent`: the turn joins that trace and its root spans get the
   * remote span as parent. Ignored when malformed.
   */
  readonly parentTraceparent?: string;
  /**
   * Largest payload value kept, as JSON characters (default 64 KiB): a longer one is stored as
   * `{ truncated: true, chars, head }`, so a long conversation cannot make every step's trace
   * entry grow without bound.
   */
  readonly maxPayloadChars?: number;
}

/** Default of {@link TraceRecorderOptions.maxPayloadChars}. */
export const DEFAULT_MAX_PAYLOAD_CHARS = 64 * 1024;

export interface StartSpanOptions {
  readonly parentSpanId?: string;
  readonly attributes?: SpanAttributes;
  readonly payload?: Readonly<Record<string, unknown>>;
}

export interface EndSpanOptions {
  readonly status: 'ok' | 'error';
  /** A KeelError (or any `{code, message, retryable}`); only those three fields are kept. */
  readonly error?: { readonly code: string; readonly message: string; readonly retryable: boolean };
}

export interface TraceRecorder {
  readonly traceId: string;
  /** `00-<traceId>-<spanId>-01`, for the outgoing hop made inside `spanId`. */
  traceparent(spanId: string): string;
  startSpan(kind: SpanKind, name: string, options?: StartSpanOptions): string;
  setAttributes(spanId: string, attributes: SpanAttributes): void;
  /** Stored as `"[redacted]"` when the key is covered by the redaction config. */
  setPayload(spanId: string, key: string, value: unknown): void;
  endSpan(spanId: string, options: EndSpanOptions): void;
  /** Ends the turn; spans still open end now with their status unchanged. */
  finish(status: Exclude<TurnTrace['status'], 'running'>): void;
  /** A copy of the trace as it stands (status `running` until {@link TraceRecorder.finish}). */
  snapshot(): TurnTrace;
}

/** The value stored in place of a redacted payload. */
export const REDACTED = '[redacted]';

/** Payload keys holding prompts or model output (redacted under `redact.prompts`). */
export const PROMPT_PAYLOAD_KEYS: ReadonlySet<string> = new Set([
  'messages',
  'system',
  'prompt',
  'response',
  'completion',
  'reasoning',
]);

/** Payload keys holding tool input or output (redacted under `redact.toolPayloads`). */
export const TOOL_PAYLOAD_KEYS: ReadonlySet<string> = new Set([
  'input',
  'output',
  'arguments',
  'result',
]);

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Random W3C ids from the platform CSPRNG (128-bit trace ids, 64-bit span ids). */
export const randomTraceIds: TraceIdGenerator = {
  traceId: () => nonZeroHex(16),
  spanId: () => nonZeroHex(8),
};

function nonZeroHex(bytes: number): string {
  for (;;) {
    const hex = randomBytes(bytes).toString('hex');
    if (!/^0+$/.test(hex)) return hex;
  }
}

/** Parses a W3C `traceparent`; undefined when malformed, version `ff` or an all-zero id. */
export function parseTraceparent(
  header: string,
): { readonly traceId: string; readonly spanId: string } | undefined {
  const m = TRACEPARENT.exec(header.trim().toLowerCase());
  if (!m) return undefined;
  const [, version, traceId, spanId] = m as unknown as [string, string, string, string];
  if (version === 'ff' || /^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId };
}

const MAX_REDACTION_DEPTH = 32;

/**
 * Copies `value` with every nested tool payload replaced by {@link REDACTED}: properties named
 * in {@link TOOL_PAYLOAD_KEYS} (a tool-call part's `input`, a step response's tool calls) and
 * the `content` of a `tool-result` part.
 */
function redactNestedToolData(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object') return value;
  // Too deep to walk: hide it rather than risk leaking tool data.
  if (depth >= MAX_REDACTION_DEPTH) return REDACTED;
  if (Array.isArray(value)) return value.map((v: unknown) => redactNestedToolData(v, depth + 1));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const record = value as Record<string, unknown>;
  const isToolResult = record.type === 'tool-result';
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(record)) {
    out[key] =
      TOOL_PAYLOAD_KEYS.has(key) || (isToolResult && key === 'content')
        ? REDACTED
        : redactNestedToolData(v, depth + 1);
  }
  return out;
}

interface MutableSpan {
  spanId: string;
  parentSpanId?: string;
  kind: SpanKind;
  name: string;
  startMs: number;
  endMs?: number;
  status: TraceSpan['status'];
  error?: { code: string; message: string; retryable: boolean };
  attributes: Record<string, AttributeValue>;
  payload?: Record<string, unknown>;
}

/**
 * Starts recording a turn.
 *
 * @example
 * ```ts
 * const rec = createTraceRecorder({ sessionId: 's1', turnId: 't1', owner: { user: 'u', tenant: 't' } });
 * const turn = rec.startSpan('turn', 'turn');
 * const step = rec.startSpan('step', 'chat claude-sonnet', { parentSpanId: turn });
 * rec.setAttributes(step, { [GEN_AI.USAGE_INPUT_TOKENS]: 120 });
 * rec.endSpan(step, { status: 'ok' });
 * rec.finish('ok');
 * await store.save(rec.snapshot());
 * ```
 */
export function createTraceRecorder(options: TraceRecorderOptions): TraceRecorder {
  const now = options.now ?? Date.now;
  const ids = options.ids ?? randomTraceIds;
  const redact = options.redact ?? { prompts: false, toolPayloads: false };
  const remote = options.parentTraceparent
    ? parseTraceparent(options.parentTraceparent)
    : undefined;
  const traceId = remote?.traceId ?? ids.traceId();
  const startMs = now();
  const spans = new Map<string, MutableSpan>();
  let status: TurnTrace['status'] = 'running';
  let endMs: number | undefined;

  const maxChars = options.maxPayloadChars ?? DEFAULT_MAX_PAYLOAD_CHARS;
  const capped = (value: unknown): unknown => {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch {
      return '[unserializable]';
    }
    if (json === undefined || json.length <= maxChars) return value;
    return { truncated: true, chars: json.length, head: json.slice(0, maxChars) };
  };
  const redacted = (kind: SpanKind, key: string, value: unknown): unknown => {
    if (redact.prompts && PROMPT_PAYLOAD_KEYS.has(key)) return REDACTED;
    if (!redact.toolPayloads) return capped(value);
    if ((kind === 'tool-call' || kind === 'approval') && TOOL_PAYLOAD_KEYS.has(key)) {
      return REDACTED;
    }
    // Tool data also travels inside prompts and responses (tool-call parts, tool results).
    return capped(redactNestedToolData(value, 0));
  };

  // Tracing never fails a turn: calls about unknown spans are ignored.
  return {
    traceId,
    traceparent: (spanId) => `00-${traceId}-${spanId}-01`,

    startSpan(kind, name, spanOptions = {}) {
      let spanId = ids.spanId();
      while (spans.has(spanId)) spanId = ids.spanId();
      const span: MutableSpan = {
        spanId,
        kind,
        name,
        startMs: now(),
        status: 'unset',
        attributes: { ...spanOptions.attributes },
      };
      const parent = spanOptions.parentSpanId ?? remote?.spanId;
      if (parent !== undefined) span.parentSpanId = parent;
      if (kind === 'turn') {
        span.attributes[KEEL_ATTRIBUTES.SESSION_ID] = options.sessionId;
        span.attributes[KEEL_ATTRIBUTES.TURN_ID] = options.turnId;
      }
      if (spanOptions.payload) {
        span.payload = {};
        for (const [key, value] of Object.entries(spanOptions.payload)) {
          span.payload[key] = redacted(kind, key, value);
        }
      }
      spans.set(spanId, span);
      return spanId;
    },

    setAttributes(spanId, attributes) {
      const span = spans.get(spanId);
      if (span) Object.assign(span.attributes, attributes);
    },

    setPayload(spanId, key, value) {
      const span = spans.get(spanId);
      if (!span) return;
      span.payload ??= {};
      span.payload[key] = redacted(span.kind, key, value);
    },

    endSpan(spanId, end) {
      const span = spans.get(spanId);
      if (!span || span.endMs !== undefined) return;
      span.endMs = now();
      span.status = end.status;
      if (end.error) {
        span.error = {
          code: end.error.code,
          message: end.error.message,
          retryable: end.error.retryable,
        };
      }
    },

    finish(finalStatus) {
      if (status !== 'running') return;
      endMs = now();
      status = finalStatus;
      for (const span of spans.values()) span.endMs ??= endMs;
    },

    snapshot() {
      const trace: TurnTrace = {
        traceId,
        sessionId: options.sessionId,
        turnId: options.turnId,
        owner: { user: options.owner.user, tenant: options.owner.tenant },
        startMs,
        ...(endMs !== undefined ? { endMs } : {}),
        status,
        spans: [...spans.values()].map(copySpan),
      };
      return trace;
    },
  };
}

function copySpan(span: MutableSpan): TraceSpan {
  return {
    spanId: span.spanId,
    ...(span.parentSpanId !== undefined ? { parentSpanId: span.parentSpanId } : {}),
    kind: span.kind,
    name: span.name,
    startMs: span.startMs,
    ...(span.endMs !== undefined ? { endMs: span.endMs } : {}),
    status: span.status,
    ...(span.error ? { error: { ...span.error } } : {}),
    attributes: { ...span.attributes },
    ...(span.payload ? { payload: { ...span.payload } } : {}),
  };
}
