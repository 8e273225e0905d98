/**
 * Turn traces (DESIGN.md section 10): turn → step → tool call spans, stored with a TTL and
 * served by `GET /v1/sessions/:id/traces` and `GET /v1/traces/:id`.
 */

export type SpanKind = 'turn' | 'step' | 'model-attempt' | 'tool-call' | 'approval';

export interface TraceSpan {
  /** 16 hex chars. */
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly kind: SpanKind;
  readonly name: string;
  /** Epoch ms. */
  readonly startMs: number;
  readonly endMs?: number;
  readonly status: 'ok' | 'error' | 'unset';
  /** The KeelError of a failed span. */
  readonly error?: { code: string; message: string; retryable: boolean };
  /** OpenTelemetry-style attributes, GenAI names where they exist (`gen_ai.request.model`...). */
  readonly attributes: Readonly<Record<string, string | number | boolean | readonly string[]>>;
  /** Payloads (prompt sent, response, tool input/output); `"[redacted]"` when redaction is on. */
  readonly payload?: Readonly<Record<string, unknown>>;
}

export interface TurnTrace {
  /** 32 hex chars: the W3C trace id that `traceparent` carries across every hop. */
  readonly traceId: string;
  readonly sessionId: string;
  readonly turnId: string;
  readonly owner: { readonly user: string; readonly tenant: string };
  readonly startMs: number;
  readonly endMs?: number;
  readonly status: 'running' | 'ok' | 'error' | 'stopped' | 'interrupted' | 'paused';
  readonly spans: readonly TraceSpan[];
}

export interface TraceSummary {
  readonly traceId: string;
  readonly turnId: string;
  readonly startMs: number;
  readonly endMs?: number;
  readonly status: TurnTrace['status'];
}

export interface TraceStore {
  save(trace: TurnTrace): Promise<void>;
  get(traceId: string): Promise<TurnTrace | undefined>;
  /** Newest first. */
  listBySession(sessionId: string, limit?: number): Promise<TraceSummary[]>;
  close(): Promise<void>;
}
