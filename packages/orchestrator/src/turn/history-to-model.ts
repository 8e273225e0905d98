/**
 * Stored UIMessages → the provider-neutral messages a model is sent. An assistant message
 * spans several steps: each step becomes an assistant message (its text and tool calls)
 * followed by a user message carrying those calls' results. Tool calls without a result (a
 * turn paused for approval, or interrupted) are left out, since providers require every call
 * to be answered.
 */
import type { ModelContentPart, ModelMessage } from '../providers/model-provider.js';
import type { UiMessagePart } from '../stream/assemble-ui-message.js';
import type { StoredMessage } from '../sessions/session-store.js';

function toolNameOf(part: UiMessagePart): string | undefined {
  return part.type.startsWith('tool-') ? part.type.slice('tool-'.length) : undefined;
}

function textOf(parts: readonly UiMessagePart[]): string {
  return parts
    .filter((p): p is Extract<UiMessagePart, { type: 'text' }> => p.type === 'text')
    .map((p) => p.text)
    .join('');
}

function assistantSteps(parts: readonly UiMessagePart[]): ModelMessage[] {
  const out: ModelMessage[] = [];
  let calls: ModelContentPart[] = [];
  let results: ModelContentPart[] = [];
  const flush = (): void => {
    if (calls.length > 0) out.push({ role: 'assistant', content: calls });
    if (results.length > 0) out.push({ role: 'user', content: results });
    calls = [];
    results = [];
  };
  for (const part of parts) {
    if (part.type === 'step-start') {
      flush();
      continue;
    }
    if (part.type === 'text') {
      if (part.text.length > 0) calls.push({ type: 'text', text: part.text });
      continue;
    }
    const toolName = toolNameOf(part);
    if (toolName === undefined || !('toolCallId' in part)) continue;
    if (part.state === 'output-available') {
      calls.push({ type: 'tool-call', toolCallId: part.toolCallId, toolName, input: part.input });
      results.push({
        type: 'tool-result',
        toolCallId: part.toolCallId,
        toolName,
        content: JSON.stringify(part.output ?? null),
        isError: false,
      });
    } else if (part.state === 'output-error') {
      calls.push({ type: 'tool-call', toolCallId: part.toolCallId, toolName, input: part.input });
      results.push({
        type: 'tool-result',
        toolCallId: part.toolCallId,
        toolName,
        content: part.errorText,
        isError: true,
      });
    }
  }
  flush();
  return out;
}

/** Converts stored messages (oldest first) to model messages. System messages are skipped. */
export function historyToModelMessages(messages: readonly StoredMessage[]): ModelMessage[] {
  const out: ModelMessage[] = [];
  for (const message of messages) {
    if (message.role === 'user') {
      const text = textOf(message.parts);
      if (text.length > 0) out.push({ role: 'user', content: [{ type: 'text', text }] });
    } else if (message.role === 'assistant') {
      out.push(...assistantSteps(message.parts));
    }
  }
  // Providers want alternating roles starting with a user message: merge neighbours.
  const merged: ModelMessage[] = [];
  for (const message of out) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last.role === message.role) {
      merged[merged.length - 1] = {
        role: last.role,
        content: [...last.content, ...message.content],
      };
    } else {
      merged.push(message);
    }
  }
  while (merged[0] !== undefined && merged[0].role !== 'user') merged.shift();
  return merged;
}
