/**
 * The turn loop (issue 4 section 3): stream a model step, dispatch its tool calls through the
 * gateway in parallel, feed results (errors included, as errors) back, until the model answers,
 * a limit or budget ends the turn, a tool needs approval, or the turn is stopped.
 *
 * Every chunk goes to the turn's stream store first (its entry id is the SSE `id:`), then to
 * the live listener, so a client that disconnects loses nothing: the turn runs to its end,
 * is saved, and any replica can replay it (S32-S34).
 */
import type { KeelError } from '@keel/tool-sdk/contract';
import {
  matchesToolGlobs,
  renderPrompt,
  type AgentConfig,
  type AgentLimits,
} from '../config/agent-config.js';
import type { ModelEntry, ModelPrices } from '../config/models-config.js';
import { costOf, reservationFor } from '../metering/cost.js';
import type { Principal } from '../auth/principal.js';
import type { ModelMessage, ModelToolSpec } from '../providers/model-provider.js';
import { keelErrorOf } from '../errors/keel-error-of.js';
import type { Reservation } from '../metering/meter.js';
import { assembleUiMessage, type UiMessagePart } from '../stream/assemble-ui-message.js';
import type { UiMessageChunk } from '../stream/ui-message-chunks.js';
import { KEEL_DATA_PART_TYPES, type KeelMessageMetadata } from '../stream/keel-data-parts.js';
import type { SessionRecord, StoredMessage } from '../sessions/session-store.js';
import type { TurnTrace } from '../traces/trace.js';
import { historyToModelMessages } from './history-to-model.js';
import { checkStep, checkToolCalls, newLimitsState, type TurnLimitsState } from './turn-limits.js';
import type { TurnEnvironment, TurnTraceRecorder } from './turn-deps.js';

/** A tool call the model made, waiting for a human (or paused with one that is). */
export interface PendingToolCall {
  readonly toolCallId: string;
  readonly toolName: string;
  readonly input: unknown;
  readonly needsApproval: boolean;
}

/** What a paused turn keeps so an approval can continue it (stored with the session). */
export interface PendingTurn {
  readonly version: 1;
  readonly turnId: string;
  readonly assistantMessageId: string;
  readonly handler?: string;
  readonly calls: readonly PendingToolCall[];
  /** toolCallId → decision, filled in as approvals arrive. */
  readonly decisions: Readonly<Record<string, { approved: boolean; reason?: string }>>;
  readonly limits: TurnLimitsState;
  readonly usage: UsageSoFar;
}

interface UsageSoFar {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number;
  model?: string;
}

export interface TurnPlan {
  readonly session: SessionRecord;
  readonly agent: AgentConfig;
  readonly principal: Principal;
  readonly turnId: string;
  /** The user's message; absent when an approval continues a paused turn. */
  readonly userMessage?: StoredMessage;
  /** `regenerate-message`: the last assistant message is replaced. */
  readonly regenerate?: boolean;
  /** The paused turn this one continues (its decisions all made). */
  readonly continues?: PendingTurn;
  readonly traceparent?: string;
  /** Aborted by `POST .../stop` (not by a client disconnect). */
  readonly signal: AbortSignal;
  /** Every chunk with its stream entry id, after it was stored. */
  onChunk?(chunk: UiMessageChunk, id: string): void;
}

/** `interrupted`: the process shut down and stopped the turn (`signal.reason === 'shutdown'`). */
export type TurnStatus = 'ok' | 'error' | 'stopped' | 'interrupted' | 'paused' | 'limited';

export interface TurnResult {
  readonly status: TurnStatus;
  readonly traceId: string;
  readonly assistantMessageId: string;
  readonly error?: KeelError;
}

const ZERO_USAGE: UsageSoFar = {
  inputTokens: 0,
  outputTokens: 0,
  cacheReadTokens: 0,
  cacheWriteTokens: 0,
  costUsd: 0,
};

/** A KeelError before the turn stamps its correlation id on it. */
type ErrorBody = Omit<KeelError, 'correlationId'> & { correlationId?: string };

function errorBodyOf(error: unknown): ErrorBody {
  return (
    keelErrorOf(error, '') ?? {
      code: 'INTERNAL',
      message: 'The turn failed unexpectedly.',
      retryable: true,
    }
  );
}

/** The highest prices of an alias's entries: a reservation must cover whichever serves. */
function pricesMax(entries: readonly ModelEntry[]): ModelPrices {
  let inputPerMTok = 0;
  let outputPerMTok = 0;
  for (const e of entries) {
    inputPerMTok = Math.max(inputPerMTok, e.prices.inputPerMTok);
    outputPerMTok = Math.max(outputPerMTok, e.prices.outputPerMTok);
  }
  return { inputPerMTok, outputPerMTok };
}

/** Holds `amountUsd` against the session's, the user's day and the tenant's month budgets. */
function reserveFor(env: TurnEnvironment, plan: TurnPlan, amountUsd: number) {
  const { agent, principal, session } = plan;
  return env.meter.reserve(
    { tenant: principal.tenant, user: principal.user, sessionId: session.id },
    {
      ...(agent.limits.budgetUsd === undefined ? {} : { sessionUsd: agent.limits.budgetUsd }),
      ...env.budgets,
    },
    amountUsd,
  );
}

/** Replaces tool parts that share a toolCallId, appends the rest. */
function mergeParts(
  base: readonly UiMessagePart[],
  next: readonly UiMessagePart[],
): UiMessagePart[] {
  const out = [...base];
  for (const part of next) {
    const id = 'toolCallId' in part ? part.toolCallId : undefined;
    const at =
      id === undefined ? -1 : out.findIndex((p) => 'toolCallId' in p && p.toolCallId === id);
    if (at >= 0) out[at] = part;
    else out.push(part);
  }
  return out;
}

interface ResolvedStep {
  readonly alias: string;
  readonly system: string;
  readonly globs: readonly string[];
}

/**
 * Runs one turn to its end. The caller holds the session's turn lock (taken with `turnId`);
 * this releases it. Never throws: failures end the turn with an `error` chunk.
 */
export async function runTurn(env: TurnEnvironment, plan: TurnPlan): Promise<TurnResult> {
  const { session, agent, principal, turnId } = plan;
  const lockTtlMs = env.lockTtlMs ?? 30_000;
  const setIntervalFn = env.setInterval ?? ((fn, ms) => setInterval(fn, ms).unref());
  const clearIntervalFn =
    env.clearInterval ?? ((h) => clearInterval(h as ReturnType<typeof setInterval>));
  const log = env.logger.child({ sessionId: session.id, turnId });
  const trace: TurnTraceRecorder = env.newTrace({
    sessionId: session.id,
    turnId,
    owner: { user: principal.user, tenant: principal.tenant },
    ...(plan.traceparent === undefined ? {} : { parentTraceparent: plan.traceparent }),
  });
  const turnSpan = trace.startSpan('turn', `turn ${agent.name}`, {
    attributes: {
      'keel.session_id': session.id,
      'keel.turn_id': turnId,
      'keel.agent': agent.name,
      'enduser.id': principal.user,
    },
  });
  const assistantMessageId = plan.continues?.assistantMessageId ?? env.newId();
  const limits = plan.continues?.limits ?? newLimitsState();
  const usage: UsageSoFar = { ...(plan.continues?.usage ?? ZERO_USAGE) };

  const renewTimer = setIntervalFn(
    () => {
      env.sessions.renewTurn(session.id, turnId, lockTtlMs).then(
        (held) => {
          if (!held) log.warn('turn lock lost while the turn was running');
        },
        () => log.warn('turn lock renewal failed'),
      );
    },
    Math.max(1_000, Math.floor(lockTtlMs / 3)),
  );

  // Chunks are stored in order, batched: while one write is in flight, the chunks made
  // meanwhile queue and go in the next write (one round trip). Each reaches the live client
  // once stored, with its entry id. When the stream store fails, the live client still gets
  // every chunk (with a local id) and the turn ends with the store's error at its next flush.
  const chunks: UiMessageChunk[] = [];
  const queue: UiMessageChunk[] = [];
  let writing: Promise<void> | undefined;
  let storeError: unknown;
  let storeFailureReported = false;
  let localIds = 0;
  const write = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = queue.splice(0, 256);
      let ids: string[] | undefined;
      if (storeError === undefined) {
        try {
          const data = batch.map((c) => JSON.stringify(c));
          ids =
            data.length === 1
              ? [await env.streams.append(session.id, turnId, data[0] as string)]
              : await env.streams.appendMany(session.id, turnId, data);
        } catch (error) {
          storeError = error;
        }
      }
      batch.forEach((chunk, i) => {
        const id = ids?.[i] ?? `0-${(localIds += 1)}`;
        plan.onChunk?.(chunk, id);
      });
    }
  };
  const startWriting = (): void => {
    if (writing !== undefined || queue.length === 0) return;
    writing = write().finally(() => {
      writing = undefined;
      startWriting();
    });
  };
  const emit = (chunk: UiMessageChunk): void => {
    chunks.push(chunk);
    queue.push(chunk);
    startWriting();
  };
  /** Waits until every chunk so far is stored and delivered; throws a store failure once. */
  const flush = async (): Promise<void> => {
    while (writing !== undefined || queue.length > 0) {
      startWriting();
      await writing;
    }
    if (storeError !== undefined && !storeFailureReported) {
      storeFailureReported = true;
      throw storeError;
    }
  };

  let baseParts: UiMessagePart[] = [];
  let history: StoredMessage[] = [];
  const currentMessage = (metadata?: KeelMessageMetadata): StoredMessage => {
    const assembled = assembleUiMessage(chunks, { messageId: assistantMessageId });
    return {
      id: assistantMessageId,
      role: 'assistant',
      parts: mergeParts(baseParts, assembled.parts),
      ...(metadata === undefined ? {} : { metadata }),
    };
  };
  const saveAssistant = async (metadata?: KeelMessageMetadata): Promise<void> => {
    await flush();
    await env.sessions.removeLastMessage(session.id, assistantMessageId);
    await env.sessions.appendMessage(session.id, currentMessage(metadata));
  };
  const metadata = (): KeelMessageMetadata => ({
    ...(usage.model === undefined ? {} : { model: usage.model }),
    usage: {
      inputTokens: usage.inputTokens,
      outputTokens: usage.outputTokens,
      cacheReadTokens: usage.cacheReadTokens,
      cacheWriteTokens: usage.cacheWriteTokens,
    },
    costUsd: Math.round(usage.costUsd * 1e9) / 1e9,
    traceId: trace.traceId,
  });

  const resolveStep = (handlerName: string | undefined): ResolvedStep => {
    const handler = handlerName === undefined ? undefined : agent.handlers[handlerName];
    return {
      alias: handler?.model ?? agent.model,
      system: renderPrompt(handler?.prompt ?? agent.prompt, session.input),
      globs: handler?.tools ?? agent.tools,
    };
  };

  let handlerName: string | undefined = plan.continues?.handler;
  const stoppedStatus = (): TurnStatus =>
    plan.signal.reason === 'shutdown' ? 'interrupted' : 'stopped';
  let status: TurnStatus = 'ok';
  let turnError: KeelError | undefined;

  const endWith = async (body: ErrorBody, kind: 'limit' | 'error'): Promise<void> => {
    const error: KeelError = { ...body, correlationId: body.correlationId ?? turnId };
    turnError = error;
    status = kind === 'limit' ? 'limited' : 'error';
    if (kind === 'limit') {
      emit({ type: KEEL_DATA_PART_TYPES.limit, data: { error } });
    }
    emit({ type: 'error', errorText: JSON.stringify(error) });
  };

  try {
    emit({
      type: 'start',
      messageId: assistantMessageId,
      messageMetadata: { traceId: trace.traceId },
    });
    // The catalog is fetched while the history is (cached at the gateway client anyway).
    const toolsLoading = env.gateway.listTools(plan.signal);
    toolsLoading.catch(() => undefined);

    // 1. The user's message is stored before any model is called. Appends and reads run in
    // call order on one connection, so the read that follows the append sees it.
    if (plan.userMessage !== undefined && plan.regenerate === true) {
      const last = (await env.sessions.readMessages(session.id, 1))[0];
      if (last?.role === 'assistant') await env.sessions.removeLastMessage(session.id, last.id);
    }
    const [, read] = await Promise.all([
      plan.userMessage === undefined
        ? Promise.resolve(false)
        : env.sessions.appendMessage(session.id, plan.userMessage),
      env.sessions.readMessages(session.id, env.historyLimit ?? 200),
    ]);
    history = read;
    if (plan.userMessage !== undefined && !history.some((m) => m.id === plan.userMessage?.id)) {
      history = [...history, plan.userMessage];
    }
    if (plan.continues !== undefined) {
      const last = history[history.length - 1];
      if (last?.id === assistantMessageId) {
        baseParts = [...last.parts];
        history = history.slice(0, -1);
      }
    }

    // 2. Which handler answers (a router model picks one), unless a paused turn already knows.
    if (handlerName === undefined && agent.router !== undefined) {
      handlerName = await routeMessage(env, plan, trace, turnSpan, usage);
    }
    const step = resolveStep(handlerName);
    const entries = env.models.models[step.alias] ?? [];
    const firstEntry = entries[0];
    if (firstEntry === undefined) {
      await endWith(
        {
          code: 'INTERNAL',
          message: `Model alias ${step.alias} is not configured.`,
          retryable: false,
        },
        'error',
      );
      return await finishTurn();
    }
    const allTools = await toolsLoading;
    const tools = allTools.filter((t) => matchesToolGlobs(t.name, step.globs));
    const toolNames = new Set(tools.map((t) => t.name));

    // 3. A paused turn continues with its tool calls, approved or declined.
    if (plan.continues !== undefined) {
      const calls = plan.continues.calls;
      for (const call of calls) {
        emit({
          type: 'tool-input-available',
          toolCallId: call.toolCallId,
          toolName: call.toolName,
          input: call.input,
        });
      }
      await runToolCalls(calls, plan.continues.decisions, toolNames, turnSpan);
      await saveAssistant();
    }

    // 4. The step loop.
    for (;;) {
      if (plan.signal.aborted) {
        status = stoppedStatus();
        break;
      }
      const stepLimit = checkStep(agent.limits, limits);
      if (stepLimit !== undefined) {
        await endWith(stepLimit, 'limit');
        break;
      }
      const outcome = await runModelStep(step, entries, tools, toolNames, agent.limits);
      if (outcome === 'end') break;
      if (outcome === 'paused') {
        status = 'paused';
        break;
      }
    }
    return await finishTurn();
  } catch (error) {
    const keel = errorBodyOf(error);
    log.error(
      { code: keel.code, err: error instanceof Error ? error.message : 'unknown' },
      'turn failed',
    );
    try {
      await endWith(keel, 'error');
    } catch {
      // The stream store itself failed; the trace and the lock are still handled below.
    }
    return await finishTurn();
  }

  // ---- helpers that close over the turn ----

  async function finishTurn(): Promise<TurnResult> {
    clearIntervalFn(renewTimer);
    try {
      if (status === 'stopped' || status === 'interrupted') {
        trace.setAttributes(turnSpan, { 'keel.stopped': status });
      }
      emit({ type: 'finish', messageMetadata: metadata() });
      await saveAssistant(metadata());
    } catch (error) {
      log.error(
        { err: error instanceof Error ? error.message : 'unknown' },
        'saving the turn failed',
      );
      if (status === 'ok') status = 'error';
    }
    try {
      await env.streams.end(session.id, turnId);
    } catch {
      log.warn('could not mark the turn stream ended');
    }
    trace.endSpan(
      turnSpan,
      turnError === undefined ? { status: 'ok' } : { status: 'error', error: turnError },
    );
    const traceStatus: TurnTrace['status'] =
      status === 'limited' ? 'error' : status === 'paused' ? 'paused' : status;
    trace.finish(traceStatus);
    const snapshot = trace.snapshot();
    await env.traces.save(snapshot).catch(() => log.warn('could not store the trace'));
    if (env.exportTrace !== undefined) {
      env.exportTrace(snapshot).catch(() => log.warn('could not export the trace'));
    }
    await env.sessions
      .releaseTurn(session.id, turnId)
      .catch(() => log.warn('could not release the turn lock'));
    return {
      status,
      traceId: trace.traceId,
      assistantMessageId,
      ...(turnError === undefined ? {} : { error: turnError }),
    };
  }

  /** One model call and its tool calls. */
  async function runModelStep(
    stepPlan: ResolvedStep,
    entries: readonly ModelEntry[],
    tools: readonly ModelToolSpec[],
    toolNames: ReadonlySet<string>,
    agentLimits: AgentLimits,
  ): Promise<'continue' | 'end' | 'paused'> {
    const firstEntry = entries[0] as ModelEntry;
    const stepIndex = limits.steps;
    limits.steps += 1;
    const maxOutputTokens = Math.max(
      1,
      Math.min(
        firstEntry.maxOutputTokens ?? 4096,
        agentLimits.maxTokensPerTurn - limits.outputTokens,
      ),
    );
    const systemAndToolsTokens = env.estimateTokens({
      system: stepPlan.system,
      messages: [],
      tools,
    });
    const allMessages = historyToModelMessages([...history, currentMessage()]);
    const summarizing = agent.context.strategy === 'summary';
    let messages = env.fitToWindow(allMessages, {
      contextWindow: Math.min(...entries.map((e) => e.contextWindow)),
      maxOutputTokens,
      // Room for the summary of what is left out.
      systemAndToolsTokens: systemAndToolsTokens + (summarizing ? SUMMARY_MAX_TOKENS : 0),
    });
    const droppedCount = allMessages.length - messages.length;
    if (summarizing && droppedCount > 0) {
      const summary = await summaryOf(
        env,
        plan,
        trace,
        turnSpan,
        usage,
        allMessages.slice(0, droppedCount),
      );
      const first = messages[0];
      if (summary !== undefined && first !== undefined && first.role === 'user') {
        messages = [
          {
            role: 'user',
            content: [
              { type: 'text', text: `(Summary of the earlier conversation: ${summary})` },
              ...first.content,
            ],
          },
          ...messages.slice(1),
        ];
      }
    }
    const request = {
      system: stepPlan.system,
      messages,
      tools,
      maxOutputTokens,
      signal: plan.signal,
    };
    const estimatedInput = env.estimateTokens(request);
    const prices = pricesMax(entries);
    const reserveUsd = reservationFor(prices, estimatedInput, maxOutputTokens);

    const stepSpan = trace.startSpan('step', `chat ${stepPlan.alias}`, {
      parentSpanId: turnSpan,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'keel.model_alias': stepPlan.alias,
        'keel.step': stepIndex,
        'gen_ai.request.max_tokens': maxOutputTokens,
        'keel.estimated_input_tokens': estimatedInput,
        'keel.reserved_usd': reserveUsd,
      },
      payload: { system: stepPlan.system, messages, tools: tools.map((t) => t.name) },
    });

    // Budget: reserve before the call, settle after (S29); fail closed (S23).
    let reservation: Reservation | undefined;
    try {
      const reserved = await reserveFor(env, plan, reserveUsd);
      if (!reserved.ok) {
        const error: ErrorBody = {
          code: 'BUDGET_EXCEEDED',
          message: `The ${reserved.kind} budget of $${reserved.limitUsd} would be exceeded.`,
          retryable: false,
          details: {
            budget: reserved.kind,
            limitUsd: reserved.limitUsd,
            usedUsd: reserved.usedUsd,
          },
        };
        trace.endSpan(stepSpan, { status: 'error', error });
        await endWith(error, 'limit');
        return 'end';
      }
      reservation = reserved.reservation;
    } catch (error) {
      const keel = errorBodyOf(error);
      trace.endSpan(stepSpan, { status: 'error', error: keel });
      await endWith(keel, 'error');
      return 'end';
    }

    emit({ type: 'start-step' });
    const startMs = env.now();
    let firstTokenMs: number | undefined;
    let textId: string | undefined;
    let reasoningId: string | undefined;
    let partCounter = 0;
    let text = '';
    const calls: PendingToolCall[] = [];
    let stepUsage = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 };
    let finishReason = 'other';
    let failure: ErrorBody | undefined;
    const call = env.callModel(stepPlan.alias, request);

    const closeOpenParts = async (): Promise<void> => {
      if (textId !== undefined) emit({ type: 'text-end', id: textId });
      if (reasoningId !== undefined) emit({ type: 'reasoning-end', id: reasoningId });
      textId = undefined;
      reasoningId = undefined;
    };

    try {
      for await (const event of call.events) {
        // The stream store failed: stop paying for tokens nobody can resume.
        if (storeError !== undefined) throw storeError;
        firstTokenMs ??= env.now();
        switch (event.type) {
          case 'text-delta':
            if (reasoningId !== undefined) {
              emit({ type: 'reasoning-end', id: reasoningId });
              reasoningId = undefined;
            }
            if (textId === undefined) {
              textId = `${assistantMessageId}-${stepIndex}-${partCounter++}`;
              emit({ type: 'text-start', id: textId });
            }
            text += event.text;
            emit({ type: 'text-delta', id: textId, delta: event.text });
            break;
          case 'reasoning-delta':
            if (reasoningId === undefined) {
              reasoningId = `${assistantMessageId}-${stepIndex}-${partCounter++}`;
              emit({ type: 'reasoning-start', id: reasoningId });
            }
            emit({ type: 'reasoning-delta', id: reasoningId, delta: event.text });
            break;
          case 'tool-call-start':
            await closeOpenParts();
            emit({
              type: 'tool-input-start',
              toolCallId: event.toolCallId,
              toolName: event.toolName,
            });
            break;
          case 'tool-call-delta':
            emit({
              type: 'tool-input-delta',
              toolCallId: event.toolCallId,
              inputTextDelta: event.inputTextDelta,
            });
            break;
          case 'tool-call':
            emit({
              type: 'tool-input-available',
              toolCallId: event.toolCallId,
              toolName: event.toolName,
              input: event.input,
            });
            calls.push({
              toolCallId: event.toolCallId,
              toolName: event.toolName,
              input: event.input,
              needsApproval: matchesToolGlobs(event.toolName, agent.approval),
            });
            break;
          case 'finish':
            stepUsage = { ...event.usage };
            finishReason = event.finishReason;
            break;
        }
      }
    } catch (error) {
      failure = plan.signal.aborted ? undefined : errorBodyOf(error);
    }
    await closeOpenParts();

    const served = call.served() ?? firstEntry;
    const costUsd = costOf(served.prices, stepUsage);
    try {
      await env.meter.settle(reservation, {
        model: served.model,
        provider: served.provider,
        ...stepUsage,
        costUsd,
      });
    } catch {
      log.warn('settling the step cost failed');
    }
    usage.inputTokens += stepUsage.inputTokens;
    usage.outputTokens += stepUsage.outputTokens;
    usage.cacheReadTokens += stepUsage.cacheReadTokens;
    usage.cacheWriteTokens += stepUsage.cacheWriteTokens;
    usage.costUsd += costUsd;
    usage.model = served.model;
    limits.outputTokens += stepUsage.outputTokens;

    const attempts = call.attempts();
    attempts.forEach((attempt, i) => {
      const span = trace.startSpan('model-attempt', `${attempt.provider} ${attempt.model}`, {
        parentSpanId: stepSpan,
        attributes: {
          'gen_ai.provider.name': attempt.provider,
          'gen_ai.request.model': attempt.model,
          'keel.attempt': i + 1,
        },
      });
      trace.endSpan(
        span,
        attempt.error === undefined ? { status: 'ok' } : { status: 'error', error: attempt.error },
      );
    });
    trace.setAttributes(stepSpan, {
      'gen_ai.provider.name': served.provider,
      'gen_ai.request.model': served.model,
      'gen_ai.response.model': served.model,
      'gen_ai.usage.input_tokens': stepUsage.inputTokens,
      'gen_ai.usage.output_tokens': stepUsage.outputTokens,
      'gen_ai.response.finish_reasons': [finishReason],
      'keel.cost_usd': costUsd,
      'keel.latency_ms': env.now() - startMs,
      'keel.fallback_attempts': Math.max(0, attempts.length - 1),
      ...(firstTokenMs === undefined ? {} : { 'keel.ttft_ms': firstTokenMs - startMs }),
    });
    trace.setPayload(stepSpan, 'response', {
      text,
      toolCalls: calls.map((c) => ({ id: c.toolCallId, name: c.toolName, input: c.input })),
    });

    if (failure !== undefined) {
      trace.endSpan(stepSpan, { status: 'error', error: failure });
      emit({ type: 'finish-step' });
      await endWith(failure, 'error');
      return 'end';
    }
    trace.endSpan(stepSpan, { status: 'ok' });
    emit({ type: 'finish-step' });
    await saveAssistant();
    // Saved at each step end too, so a turn whose process dies keeps its trace (S34).
    env.traces.save(trace.snapshot()).catch(() => log.warn('could not store the trace'));

    if (plan.signal.aborted) {
      status = stoppedStatus();
      return 'end';
    }
    if (calls.length === 0) return 'end';

    const limitError = checkToolCalls(agent.limits, limits, calls);
    if (limitError !== undefined) {
      for (const c of calls) {
        emit({
          type: 'tool-output-error',
          toolCallId: c.toolCallId,
          errorText: JSON.stringify({ ...limitError, correlationId: turnId }),
        });
      }
      await endWith(limitError, 'limit');
      return 'end';
    }

    if (calls.some((c) => c.needsApproval && toolNames.has(c.toolName))) {
      for (const c of calls) {
        if (!c.needsApproval) continue;
        emit({
          type: KEEL_DATA_PART_TYPES.approval,
          id: `approval-${c.toolCallId}`,
          data: { toolCallId: c.toolCallId, toolName: c.toolName, input: c.input },
        });
      }
      const pending: PendingTurn = {
        version: 1,
        turnId,
        assistantMessageId,
        ...(handlerName === undefined ? {} : { handler: handlerName }),
        calls,
        decisions: {},
        limits,
        usage,
      };
      await saveAssistant();
      await env.sessions.savePending(session.id, pending);
      return 'paused';
    }

    await runToolCalls(calls, undefined, toolNames, stepSpan);
    await saveAssistant();
    return 'continue';
  }

  /** Dispatches a step's tool calls in parallel; every outcome reaches the stream and the model. */
  async function runToolCalls(
    calls: readonly PendingToolCall[],
    decisions: PendingTurn['decisions'] | undefined,
    toolNames: ReadonlySet<string>,
    parentSpan: string,
  ): Promise<void> {
    await Promise.all(
      calls.map(async (c) => {
        const span = trace.startSpan('tool-call', `execute_tool ${c.toolName}`, {
          parentSpanId: parentSpan,
          attributes: {
            'gen_ai.operation.name': 'execute_tool',
            'gen_ai.tool.name': c.toolName,
            'gen_ai.tool.call.id': c.toolCallId,
          },
          payload: { input: c.input },
        });
        const decision = decisions?.[c.toolCallId];
        let outcome: { ok: true; output: unknown } | { ok: false; error: ErrorBody };
        if (!toolNames.has(c.toolName)) {
          outcome = {
            ok: false,
            error: {
              code: 'NOT_FOUND',
              message: `Tool ${c.toolName} is not available to this agent.`,
              retryable: false,
            },
          };
        } else if (c.needsApproval && decision?.approved !== true) {
          outcome = {
            ok: false,
            error: {
              code: 'FORBIDDEN',
              message: `The user declined this call${decision?.reason === undefined ? '' : `: ${decision.reason}`}.`,
              retryable: false,
              details: { approval: 'declined' },
            },
          };
        } else {
          const idempotencyKey = `${session.id}:${c.toolCallId}`;
          trace.setAttributes(span, { 'keel.idempotency_key': idempotencyKey });
          outcome = await env.gateway.callTool(c.toolName, c.input, {
            user: principal.user,
            tenant: principal.tenant,
            sessionId: session.id,
            idempotencyKey,
            traceparent: trace.traceparent(span),
            signal: plan.signal,
            onProgress: (progress, total, message) => {
              void emit({
                type: KEEL_DATA_PART_TYPES.progress,
                id: `progress-${c.toolCallId}`,
                data: {
                  toolCallId: c.toolCallId,
                  progress,
                  ...(total === undefined ? {} : { total }),
                  ...(message === undefined ? {} : { message }),
                },
              });
            },
          });
        }
        if (outcome.ok) {
          trace.setPayload(span, 'output', outcome.output);
          trace.endSpan(span, { status: 'ok' });
          emit({
            type: 'tool-output-available',
            toolCallId: c.toolCallId,
            output: outcome.output,
          });
        } else {
          trace.endSpan(span, { status: 'error', error: outcome.error });
          emit({
            type: 'tool-output-error',
            toolCallId: c.toolCallId,
            errorText: JSON.stringify({ correlationId: turnId, ...outcome.error }),
          });
        }
      }),
    );
  }
}

/**
 * A model call whose text the turn uses itself (routing, summarising): metered against the
 * same budgets, traced as a step, never streamed to the client. Undefined when the budget
 * refuses it or the model fails (the caller falls back).
 */
async function sideCall(
  env: TurnEnvironment,
  plan: TurnPlan,
  trace: TurnTraceRecorder,
  parentSpan: string,
  usage: UsageSoFar,
  call: { alias: string; name: string; system: string; text: string; maxOutputTokens: number },
): Promise<{ text: string; spanId: string } | undefined> {
  const span = trace.startSpan('step', `${call.name} ${call.alias}`, {
    parentSpanId: parentSpan,
    attributes: {
      'gen_ai.operation.name': 'chat',
      'keel.model_alias': call.alias,
      [`keel.${call.name}`]: true,
      'gen_ai.request.max_tokens': call.maxOutputTokens,
    },
    payload: { system: call.system, messages: [call.text] },
  });
  const request = {
    system: call.system,
    messages: [{ role: 'user' as const, content: [{ type: 'text' as const, text: call.text }] }],
    tools: [],
    maxOutputTokens: call.maxOutputTokens,
    signal: plan.signal,
  };
  const entries = env.models.models[call.alias] ?? [];
  const reserved = await reserveFor(
    env,
    plan,
    reservationFor(pricesMax(entries), env.estimateTokens(request), call.maxOutputTokens),
  );
  if (!reserved.ok) {
    trace.endSpan(span, {
      status: 'error',
      error: { code: 'BUDGET_EXCEEDED', message: `${call.name} skipped`, retryable: false },
    });
    return undefined;
  }
  let answer = '';
  let failed = false;
  let stepUsage = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 };
  const stream = env.callModel(call.alias, request);
  try {
    for await (const event of stream.events) {
      if (event.type === 'text-delta') answer += event.text;
      if (event.type === 'finish') stepUsage = { ...event.usage };
    }
  } catch (error) {
    failed = true;
    trace.endSpan(span, { status: 'error', error: errorBodyOf(error) });
  }
  const served = stream.served() ?? entries[0];
  const costUsd = served === undefined ? 0 : costOf(served.prices, stepUsage);
  await env.meter
    .settle(reserved.reservation, {
      model: served?.model ?? call.alias,
      provider: served?.provider ?? 'unknown',
      ...stepUsage,
      costUsd,
    })
    .catch(() => undefined);
  usage.inputTokens += stepUsage.inputTokens;
  usage.outputTokens += stepUsage.outputTokens;
  usage.cacheReadTokens += stepUsage.cacheReadTokens;
  usage.cacheWriteTokens += stepUsage.cacheWriteTokens;
  usage.costUsd += costUsd;
  if (failed) return undefined;
  trace.setAttributes(span, {
    'gen_ai.usage.input_tokens': stepUsage.inputTokens,
    'gen_ai.usage.output_tokens': stepUsage.outputTokens,
    'keel.cost_usd': costUsd,
    ...(served === undefined ? {} : { 'gen_ai.request.model': served.model }),
  });
  trace.setPayload(span, 'response', { text: answer });
  return { text: answer, spanId: span };
}

/** Asks the router model which handler answers the newest user message. */
async function routeMessage(
  env: TurnEnvironment,
  plan: TurnPlan,
  trace: TurnTraceRecorder,
  parentSpan: string,
  usage: UsageSoFar,
): Promise<string | undefined> {
  const { agent } = plan;
  const router = agent.router;
  if (router === undefined) return undefined;
  const names = Object.keys(agent.handlers);
  const text = plan.userMessage?.parts.map((p) => (p.type === 'text' ? p.text : '')).join('') ?? '';
  const system = `${renderPrompt(router.prompt, plan.session.input)}\n\nAnswer with exactly one of: ${names
    .map((n) => `"${n}" (${agent.handlers[n]?.description ?? ''})`)
    .join(', ')}.`;
  const result = await sideCall(env, plan, trace, parentSpan, usage, {
    alias: router.model,
    name: 'route',
    system,
    text,
    maxOutputTokens: 16,
  });
  const lowered = (result?.text ?? '').toLowerCase();
  const chosen = names.find((n) => lowered.includes(n.toLowerCase())) ?? names[0];
  if (result !== undefined) {
    trace.setAttributes(result.spanId, { 'keel.handler': chosen ?? '' });
    trace.endSpan(result.spanId, { status: 'ok' });
  }
  return chosen;
}

/** Renders model messages as plain text for the summary model. */
function transcript(messages: readonly ModelMessage[]): string {
  return messages
    .map((m) =>
      m.content
        .map((p) =>
          p.type === 'text'
            ? `${m.role}: ${p.text}`
            : p.type === 'tool-call'
              ? `assistant called ${p.toolName} ${JSON.stringify(p.input)}`
              : `${p.toolName} ${p.isError ? 'failed' : 'returned'}: ${p.content.slice(0, 2_000)}`,
        )
        .join('\n'),
    )
    .join('\n');
}

export const SUMMARY_MAX_TOKENS = 512;

/**
 * The running summary of what the window left out (context strategy `summary`): reused while
 * the same messages are out, extended with the newly dropped ones (previous summary + them)
 * by the agent's summary model. Undefined when it cannot be made (budget, model failure).
 */
async function summaryOf(
  env: TurnEnvironment,
  plan: TurnPlan,
  trace: TurnTraceRecorder,
  parentSpan: string,
  usage: UsageSoFar,
  dropped: readonly ModelMessage[],
): Promise<string | undefined> {
  const store = env.summaries;
  if (store === undefined) return undefined;
  const saved = await store.get(plan.session.id).catch(() => undefined);
  if (saved !== undefined && saved.covered === dropped.length) return saved.text;
  const extending = saved !== undefined && saved.covered < dropped.length;
  const fresh = extending ? dropped.slice(saved.covered) : dropped;
  const text = `${extending ? `Summary so far:\n${saved.text}\n\nThen:\n` : ''}${transcript(fresh)}`;
  const result = await sideCall(env, plan, trace, parentSpan, usage, {
    alias: plan.agent.context.summaryModel ?? plan.agent.model,
    name: 'summarize',
    system:
      "Summarise this conversation between a user and an assistant for the assistant's memory: the facts, ids, decisions and open questions, in a few short sentences. Output only the summary.",
    text,
    maxOutputTokens: SUMMARY_MAX_TOKENS,
  });
  if (result === undefined) return saved?.text;
  trace.setAttributes(result.spanId, { 'keel.summarized_messages': dropped.length });
  trace.endSpan(result.spanId, { status: 'ok' });
  await store
    .set(plan.session.id, { covered: dropped.length, text: result.text })
    .catch(() => undefined);
  return result.text;
}
