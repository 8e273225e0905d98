/**
 * What a turn needs from the rest of the orchestrator, as narrow interfaces so the loop can be
 * tested with the in-memory stores and a scripted model, and run in production with Redis,
 * the provider SDKs and the gateway.
 */
import type { Logger } from 'pino';
import type { ModelEntry, ModelsConfig } from '../config/models-config.js';
import type { ToolGateway } from '../gateway-client/tool-gateway.js';
import type { BudgetLimits, Meter } from '../metering/meter.js';
import type {
  ModelEvent,
  ModelMessage,
  ModelRequest,
  ModelToolSpec,
} from '../providers/model-provider.js';
import type { ModelAttempt } from '../providers/fallback-client.js';
import type { SessionStore, TurnStreamStore } from '../sessions/session-store.js';
import type { TraceStore, TurnTrace } from '../traces/trace.js';
import type { TraceRecorder } from '../traces/trace-recorder.js';
import type { SummaryStore } from './summary-store.js';

/** A model step in flight: its events, then which entry served it and the attempts made. */
export interface ModelStepCall {
  readonly events: AsyncIterable<ModelEvent>;
  served(): ModelEntry | undefined;
  attempts(): readonly ModelAttempt[];
}

/** Streams one step from a model alias (with fallback across the alias's entries). */
export type CallModel = (alias: string, request: ModelRequest) => ModelStepCall;

/** The trace of one turn being recorded. */
export type TurnTraceRecorder = TraceRecorder;

export interface NewTraceInput {
  readonly sessionId: string;
  readonly turnId: string;
  readonly owner: { user: string; tenant: string };
  readonly parentTraceparent?: string;
}

export interface TurnEnvironment {
  readonly sessions: SessionStore;
  readonly streams: TurnStreamStore;
  readonly meter: Meter;
  readonly traces: TraceStore;
  readonly gateway: ToolGateway;
  readonly callModel: CallModel;
  readonly models: ModelsConfig;
  /** Per user per day and per tenant per month; the agent's `limits.budgetUsd` is per session. */
  readonly budgets: Pick<BudgetLimits, 'userDayUsd' | 'tenantMonthUsd'>;
  estimateTokens(request: Pick<ModelRequest, 'system' | 'messages' | 'tools'>): number;
  /** Cuts what the model sees to its window (oldest first out); the stored history is untouched. */
  fitToWindow(
    messages: readonly ModelMessage[],
    window: { contextWindow: number; maxOutputTokens: number; systemAndToolsTokens: number },
  ): ModelMessage[];
  newTrace(input: NewTraceInput): TurnTraceRecorder;
  /** The running summaries of context strategy `summary`. Without it, the window only cuts. */
  readonly summaries?: SummaryStore;
  /** OTLP export of finished traces, when configured. */
  exportTrace?(trace: TurnTrace): Promise<void>;
  readonly logger: Logger;
  now(): number;
  newId(): string;
  /** Turn lock TTL; renewed every third of it. Default 30 s. */
  readonly lockTtlMs?: number;
  /** How many stored messages a turn reads (the model window is cut from these). Default 200. */
  readonly historyLimit?: number;
  /** Injected timers (tests). */
  setInterval?(fn: () => void, ms: number): unknown;
  clearInterval?(handle: unknown): void;
}

export type { ModelToolSpec };
