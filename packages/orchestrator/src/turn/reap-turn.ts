/**
 * A turn whose process died (`kill -9`, S34) leaves a stream without its end and a turn lock
 * that lapses. Whichever replica notices first closes it: the answer so far is rebuilt from the
 * stream and saved, an `error` chunk (UNAVAILABLE, `details.interrupted`) and `finish` end the
 * stream, and the trace (saved at each step end) is marked `interrupted`. Never silently lost.
 */
import { assembleUiMessage } from '../stream/assemble-ui-message.js';
import { uiMessageChunkSchema, type UiMessageChunk } from '../stream/ui-message-chunks.js';
import type { TurnEnvironment } from './turn-deps.js';

/** Closes `turnId` if it is unfinished and nobody holds the session's turn lock. */
export async function reapInterruptedTurn(
  env: Pick<TurnEnvironment, 'sessions' | 'streams' | 'traces' | 'logger' | 'newId'>,
  sessionId: string,
  turnId: string,
): Promise<boolean> {
  if (await env.streams.ended(sessionId, turnId)) return false; // it did finish
  const reaper = `reap-${env.newId()}`;
  const lock = await env.sessions.acquireTurn(sessionId, reaper, 30_000);
  if (!lock.ok) return false;
  try {
    const chunks: UiMessageChunk[] = [];
    let after: string | undefined;
    for (;;) {
      const read = await env.streams.read(sessionId, turnId, {
        ...(after === undefined ? {} : { after }),
        blockMs: 0,
        count: 1_000,
      });
      if (read.ended) return false; // it did finish
      for (const entry of read.entries) {
        const parsed = uiMessageChunkSchema.safeParse(JSON.parse(entry.data));
        if (parsed.success) chunks.push(parsed.data);
        after = entry.id;
      }
      if (read.entries.length === 0) break;
    }
    const start = chunks.find((c) => c.type === 'start');
    const messageId = start?.type === 'start' ? start.messageId : undefined;
    const traceId = (start?.type === 'start' ? start.messageMetadata : undefined) as
      { traceId?: string } | undefined;
    const error = {
      code: 'UNAVAILABLE',
      message:
        'The turn was interrupted when its orchestrator stopped; the answer so far is kept. Send the message again to continue.',
      retryable: true,
      details: { interrupted: true },
      correlationId: turnId,
    };
    // Close any open text or reasoning part so clients rebuild a well-formed message.
    const open = new Map<string, 'text' | 'reasoning'>();
    for (const c of chunks) {
      if (c.type === 'text-start') open.set(c.id, 'text');
      if (c.type === 'reasoning-start') open.set(c.id, 'reasoning');
      if (c.type === 'text-end' || c.type === 'reasoning-end') open.delete(c.id);
      if (c.type === 'finish-step') open.clear();
    }
    const closing: UiMessageChunk[] = [
      ...[...open].map(([id, kind]): UiMessageChunk =>
        kind === 'text' ? { type: 'text-end', id } : { type: 'reasoning-end', id },
      ),
      { type: 'error', errorText: JSON.stringify(error) },
      { type: 'finish' },
    ];
    for (const chunk of closing) {
      await env.streams.append(sessionId, turnId, JSON.stringify(chunk));
      chunks.push(chunk);
    }
    await env.streams.end(sessionId, turnId);
    if (messageId !== undefined) {
      const message = assembleUiMessage(chunks, { messageId });
      await env.sessions.removeLastMessage(sessionId, messageId);
      await env.sessions.appendMessage(sessionId, {
        id: messageId,
        role: 'assistant',
        parts: message.parts,
        metadata: { ...(message.metadata as object | undefined), interrupted: true },
      });
    }
    if (traceId?.traceId !== undefined) {
      const trace = await env.traces.get(traceId.traceId);
      if (trace !== undefined && trace.status === 'running') {
        await env.traces.save({ ...trace, status: 'interrupted' });
      }
    }
    env.logger.warn({ sessionId, turnId }, 'closed a turn interrupted by a stopped process');
    return true;
  } finally {
    await env.sessions.releaseTurn(sessionId, reaper).catch(() => undefined);
  }
}
