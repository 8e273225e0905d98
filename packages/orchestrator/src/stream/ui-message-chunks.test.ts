import { describe, expect, it } from 'vitest';
import {
  isDataUiMessageChunk,
  isUiMessageChunk,
  uiMessageChunkSchema,
  type UiMessageChunk,
} from './ui-message-chunks.js';

// One valid example per chunk type ai@5.0.0 accepts, with every optional field set.
const everyChunk: UiMessageChunk[] = [
  { type: 'start', messageId: 'm1', messageMetadata: { model: 'x' } },
  { type: 'start' },
  { type: 'start-step' },
  { type: 'text-start', id: 't1' },
  { type: 'text-delta', id: 't1', delta: 'Hello' },
  { type: 'text-end', id: 't1' },
  { type: 'reasoning-start', id: 'r1' },
  { type: 'reasoning-delta', id: 'r1', delta: 'think' },
  { type: 'reasoning-end', id: 'r1' },
  { type: 'tool-input-start', toolCallId: 'c1', toolName: 'search' },
  { type: 'tool-input-delta', toolCallId: 'c1', inputTextDelta: '{"q":' },
  { type: 'tool-input-available', toolCallId: 'c1', toolName: 'search', input: { q: 'x' } },
  { type: 'tool-output-available', toolCallId: 'c1', output: { hits: 3 } },
  { type: 'tool-output-error', toolCallId: 'c1', errorText: '{"code":"TOOL_FAILED"}' },
  {
    type: 'data-keel-progress',
    id: 'p1',
    data: { toolCallId: 'c1', progress: 1 },
    transient: true,
  },
  { type: 'data-keel-limit', data: { reason: 'budget' } },
  { type: 'finish-step' },
  { type: 'finish', messageMetadata: { costUsd: 0.01 } },
  { type: 'finish' },
  { type: 'error', errorText: '{"code":"INTERNAL"}' },
  { type: 'message-metadata', messageMetadata: { traceId: 'abc' } },
  { type: 'abort' },
];

describe('uiMessageChunkSchema', () => {
  it.each(everyChunk.map((c) => [c.type, c] as const))('accepts %s', (_type, chunk) => {
    expect(uiMessageChunkSchema.safeParse(chunk).success).toBe(true);
    expect(isUiMessageChunk(chunk)).toBe(true);
  });

  it('covers exactly the 22 ai@5.0.0 chunk types (data-* counted once)', () => {
    const types = new Set(everyChunk.map((c) => (c.type.startsWith('data-') ? 'data-*' : c.type)));
    expect([...types].sort()).toEqual(
      [
        'start',
        'start-step',
        'text-start',
        'text-delta',
        'text-end',
        'reasoning-start',
        'reasoning-delta',
        'reasoning-end',
        'tool-input-start',
        'tool-input-delta',
        'tool-input-available',
        'tool-output-available',
        'tool-output-error',
        'data-*',
        'finish-step',
        'finish',
        'error',
        'message-metadata',
        'abort',
      ].sort(),
    );
  });

  it.each(everyChunk.map((c) => [c.type, c] as const))(
    'rejects %s with an extra field',
    (_t, chunk) => {
      expect(isUiMessageChunk({ ...chunk, extra: 1 })).toBe(false);
    },
  );

  it('rejects fields that only later ai versions accept', () => {
    expect(isUiMessageChunk({ type: 'finish', finishReason: 'stop' })).toBe(false);
    expect(isUiMessageChunk({ type: 'abort', reason: 'user' })).toBe(false);
    expect(
      isUiMessageChunk({ type: 'tool-input-start', toolCallId: 'c', toolName: 'n', dynamic: true }),
    ).toBe(false);
    expect(isUiMessageChunk({ type: 'text-start', id: 't', providerMetadata: {} })).toBe(false);
  });

  it('rejects missing required fields, wrong types and unknown chunk types', () => {
    expect(isUiMessageChunk({ type: 'text-delta', id: 't1' })).toBe(false);
    expect(isUiMessageChunk({ type: 'text-delta', id: 1, delta: 'x' })).toBe(false);
    expect(isUiMessageChunk({ type: 'tool-output-error', toolCallId: 'c' })).toBe(false);
    expect(isUiMessageChunk({ type: 'message-metadata' })).toBe(false);
    expect(isUiMessageChunk({ type: 'tool-input-error', toolCallId: 'c' })).toBe(false);
    expect(isUiMessageChunk({ type: 'source-url', sourceId: 's', url: 'u' })).toBe(false);
    expect(isUiMessageChunk({ type: 'keel-progress', data: 1 })).toBe(false);
    expect(isUiMessageChunk({ type: 'data-x', data: 1, transient: 'yes' })).toBe(false);
    expect(isUiMessageChunk(null)).toBe(false);
    expect(isUiMessageChunk('text-delta')).toBe(false);
  });

  it('tells data chunks apart', () => {
    expect(isDataUiMessageChunk({ type: 'data-keel-limit', data: {} })).toBe(true);
    expect(isDataUiMessageChunk({ type: 'text-start', id: 't' })).toBe(false);
  });
});
