import { describe, expect, it } from 'vitest';
import { assembleUiMessage, InvalidUiMessageStreamError } from './assemble-ui-message.js';
import type { UiMessageChunk } from './ui-message-chunks.js';

describe('assembleUiMessage', () => {
  it('rebuilds text, a tool call with output, a tool error and data parts', () => {
    const keelError = JSON.stringify({ code: 'TOOL_FAILED', message: 'boom', retryable: false });
    const chunks: UiMessageChunk[] = [
      { type: 'start', messageId: 'msg-1', messageMetadata: { model: 'claude', traceId: 'tr1' } },
      { type: 'start-step' },
      { type: 'text-start', id: 't1' },
      { type: 'text-delta', id: 't1', delta: 'Let me ' },
      { type: 'text-delta', id: 't1', delta: 'look.' },
      { type: 'text-end', id: 't1' },
      { type: 'tool-input-start', toolCallId: 'c1', toolName: 'search' },
      { type: 'tool-input-delta', toolCallId: 'c1', inputTextDelta: '{"q":' },
      { type: 'tool-input-delta', toolCallId: 'c1', inputTextDelta: '"keel"}' },
      { type: 'tool-input-available', toolCallId: 'c1', toolName: 'search', input: { q: 'keel' } },
      {
        type: 'tool-input-available',
        toolCallId: 'c2',
        toolName: 'fetch_page',
        input: { url: 'u' },
      },
      { type: 'finish-step' },
      { type: 'data-keel-progress', id: 'c1', data: { toolCallId: 'c1', progress: 1 } },
      { type: 'data-keel-progress', id: 'c1', data: { toolCallId: 'c1', progress: 2, total: 2 } },
      { type: 'data-keel-ping', data: {}, transient: true },
      { type: 'tool-output-available', toolCallId: 'c1', output: { hits: 3 } },
      { type: 'tool-output-error', toolCallId: 'c2', errorText: keelError },
      { type: 'start-step' },
      { type: 'text-start', id: 't1' },
      { type: 'text-delta', id: 't1', delta: 'Found 3.' },
      { type: 'text-end', id: 't1' },
      { type: 'finish-step' },
      { type: 'message-metadata', messageMetadata: { usage: { inputTokens: 10 } } },
      {
        type: 'finish',
        messageMetadata: { usage: { outputTokens: 5 }, costUsd: 0.002 },
      },
    ];

    expect(assembleUiMessage(chunks)).toEqual({
      id: 'msg-1',
      role: 'assistant',
      metadata: {
        model: 'claude',
        traceId: 'tr1',
        usage: { inputTokens: 10, outputTokens: 5 },
        costUsd: 0.002,
      },
      parts: [
        { type: 'step-start' },
        { type: 'text', text: 'Let me look.', state: 'done' },
        {
          type: 'tool-search',
          toolCallId: 'c1',
          state: 'output-available',
          input: { q: 'keel' },
          output: { hits: 3 },
        },
        {
          type: 'tool-fetch_page',
          toolCallId: 'c2',
          state: 'output-error',
          input: { url: 'u' },
          errorText: keelError,
        },
        { type: 'data-keel-progress', id: 'c1', data: { toolCallId: 'c1', progress: 2, total: 2 } },
        { type: 'step-start' },
        { type: 'text', text: 'Found 3.', state: 'done' },
      ],
    });
  });

  it('shows partial state when the stream stops mid-way (a stopped or running turn)', () => {
    const message = assembleUiMessage(
      [
        { type: 'start' },
        { type: 'start-step' },
        { type: 'reasoning-start', id: 'r' },
        { type: 'reasoning-delta', id: 'r', delta: 'hmm' },
        { type: 'reasoning-end', id: 'r' },
        { type: 'text-start', id: 't' },
        { type: 'text-delta', id: 't', delta: 'Part' },
        { type: 'tool-input-start', toolCallId: 'c', toolName: 'calc' },
        { type: 'tool-input-delta', toolCallId: 'c', inputTextDelta: '{"a":1' },
        { type: 'abort' },
      ],
      { messageId: 'fallback' },
    );
    expect(message.id).toBe('fallback');
    expect(message.metadata).toBeUndefined();
    expect(message.parts).toEqual([
      { type: 'step-start' },
      { type: 'reasoning', text: 'hmm', state: 'done' },
      { type: 'text', text: 'Part', state: 'streaming' },
      { type: 'tool-calc', toolCallId: 'c', state: 'input-streaming', input: undefined },
    ]);
  });

  it('rejects a delta before its start and output for an unknown tool call', () => {
    expect(() => assembleUiMessage([{ type: 'text-delta', id: 'x', delta: 'a' }])).toThrow(
      InvalidUiMessageStreamError,
    );
    expect(() =>
      assembleUiMessage([{ type: 'tool-output-available', toolCallId: 'nope', output: 1 }]),
    ).toThrow(InvalidUiMessageStreamError);
    expect(() => assembleUiMessage([{ type: 'reasoning-end', id: 'r' }])).toThrow(
      InvalidUiMessageStreamError,
    );
  });
});
