/**
 * A model alias's ordered fallback list (DESIGN.md section 8): the first entry is used; the
 * next only on a transient error before any event has streamed. Once content has streamed, a
 * failure is the turn's failure. Every attempt is recorded for the step's trace.
 */
import type { KeelError } from '@keel/tool-sdk/contract';
import { ModelCallError } from './model-provider.js';
import type { ModelClient, ModelEvent, ModelRequest } from './model-provider.js';
import { classifyProviderError } from './classify-provider-error.js';

/** One call to one entry, as the trace records it. */
export interface ModelAttempt {
  readonly entryIndex: number;
  readonly provider: ModelClient['provider'];
  readonly model: string;
  /** Epoch ms. */
  readonly startMs: number;
  readonly endMs: number;
  /** Epoch ms of the first event, when one came. */
  readonly firstEventMs?: number;
  /** Absent on success; for an abort, code `CANCELLED`. */
  readonly error?: KeelError;
}

export interface StreamWithFallbackOptions {
  /** Called as each attempt ends (failed, succeeded or aborted). */
  readonly onAttempt?: (attempt: ModelAttempt) => void;
  /** Clock; default `Date.now`. */
  readonly now?: () => number;
}

/** The events of whichever entry serves, plus what the attempts were. */
export interface FallbackStream extends AsyncIterable<ModelEvent> {
  /** Every attempt that has ended so far, in order. Complete once iteration ends. */
  readonly attempts: readonly ModelAttempt[];
  /** The entry that produced the first event, once it has. */
  readonly served: { readonly entryIndex: number; readonly client: ModelClient } | undefined;
}

/**
 * Streams `request` from the first entry that answers, falling back on transient errors that
 * happen before the first event. When every entry fails, the last error is thrown with every
 * attempt's error in `keel.details.attempts`. Aborts are never retried or wrapped.
 *
 * @example
 * ```ts
 * const stream = streamWithFallback(clients, request, { onAttempt: (a) => trace.push(a) });
 * for await (const event of stream) handle(event);
 * const served = stream.served; // { entryIndex, client }
 * ```
 */
export function streamWithFallback(
  entries: readonly ModelClient[],
  request: ModelRequest,
  options: StreamWithFallbackOptions = {},
): FallbackStream {
  const now = options.now ?? Date.now;
  const attempts: ModelAttempt[] = [];
  let served: FallbackStream['served'];
  let used = false;

  const record = (attempt: ModelAttempt): void => {
    attempts.push(attempt);
    options.onAttempt?.(attempt);
  };

  async function* run(): AsyncGenerator<ModelEvent> {
    if (entries.length === 0) {
      throw new ModelCallError(
        {
          code: 'NOT_FOUND',
          message: 'no model entries to call',
          retryable: false,
          correlationId: '',
        },
        false,
      );
    }
    const failures: ModelCallError[] = [];
    for (const [entryIndex, client] of entries.entries()) {
      const base = { entryIndex, provider: client.provider, model: client.model };
      const startMs = now();
      let firstEventMs: number | undefined;
      let iterator: AsyncIterator<ModelEvent> | undefined;
      let failed = false;
      try {
        iterator = client.stream(request)[Symbol.asyncIterator]();
        for (;;) {
          const next = await iterator.next();
          if (next.done) break;
          if (firstEventMs === undefined) {
            firstEventMs = now();
            served = { entryIndex, client };
          }
          yield next.value;
        }
      } catch (error) {
        failed = true;
        const endMs = now();
        const timing = {
          ...base,
          startMs,
          endMs,
          ...(firstEventMs !== undefined ? { firstEventMs } : {}),
        };
        if (request.signal?.aborted || isAbortLike(error)) {
          record({ ...timing, error: cancelled(client) });
          throw error;
        }
        const failure = classifyProviderError(error, client);
        record({ ...timing, error: failure.keel });
        failures.push(failure);
        if (firstEventMs === undefined && failure.transient && entryIndex < entries.length - 1) {
          continue;
        }
        throw withAttempts(failure, failures);
      } finally {
        // Closes the entry's stream (and its HTTP request) if the consumer stopped early.
        await iterator?.return?.();
        // A finished stream, or one the consumer stopped reading: the attempt itself succeeded.
        if (!failed) {
          record({
            ...base,
            startMs,
            endMs: now(),
            ...(firstEventMs !== undefined ? { firstEventMs } : {}),
          });
        }
      }
      return;
    }
  }

  const stream: FallbackStream = {
    get attempts() {
      return attempts;
    },
    get served() {
      return served;
    },
    [Symbol.asyncIterator]() {
      if (used) throw new Error('streamWithFallback: a FallbackStream can be iterated once');
      used = true;
      return run();
    },
  };
  return stream;
}

function isAbortLike(error: unknown): boolean {
  return (
    error instanceof Error && (error.name === 'AbortError' || error.name === 'APIUserAbortError')
  );
}

function cancelled(client: ModelClient): KeelError {
  return {
    code: 'CANCELLED',
    message: `${client.provider} model ${client.model}: aborted`,
    retryable: false,
    details: { provider: client.provider, model: client.model },
    correlationId: '',
  };
}

/** The last failure, with every attempt's error kept in its details. */
function withAttempts(last: ModelCallError, failures: readonly ModelCallError[]): ModelCallError {
  if (failures.length <= 1) return last;
  const details =
    typeof last.keel.details === 'object' && last.keel.details !== null ? last.keel.details : {};
  return new ModelCallError(
    {
      ...last.keel,
      details: {
        ...details,
        attempts: failures.map((failure) => ({
          code: failure.keel.code,
          message: failure.keel.message,
          retryable: failure.keel.retryable,
          ...(failure.status !== undefined ? { status: failure.status } : {}),
        })),
      },
    },
    last.transient,
    last.status,
  );
}
