import { describe, expect, it } from 'vitest';
import { historyToModelMessages } from './history-to-model.js';
import type { StoredMessage } from '../sessions/session-store.js';

describe('historyToModelMessages', () => {
  it('splits an assistant message into steps with tool calls and their results', () => {
    const history: StoredMessage[] = [
      {
        id: 'u1',
        role: 'user',
        parts: [{ type: 'text', text: 'Where is order 7?', state: 'done' }],
      },
      {
        id: 'a1',
        role: 'assistant',
        parts: [
          { type: 'step-start' },
          { type: 'text', text: 'Looking.', state: 'done' },
          {
            type: 'tool-orders__get_order',
            toolCallId: 'c1',
            state: 'output-available',
            input: { id: 7 },
            output: { status: 'shipped' },
          },
          {
            type: 'tool-orders__refund_order',
            toolCallId: 'c2',
            state: 'output-error',
            input: { id: 7 },
            errorText: '{"code":"NOT_REFUNDABLE"}',
          },
          { type: 'tool-orders__cancel', toolCallId: 'c3', state: 'input-available', input: {} },
          { type: 'step-start' },
          { type: 'text', text: 'It shipped.', state: 'done' },
        ],
      },
    ];
    expect(historyToModelMessages(history)).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Where is order 7?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Looking.' },
          { type: 'tool-call', toolCallId: 'c1', toolName: 'orders__get_order', input: { id: 7 } },
          {
            type: 'tool-call',
            toolCallId: 'c2',
            toolName: 'orders__refund_order',
            input: { id: 7 },
          },
        ],
      },
      {
        role: 'user',
        content: [
          {
            type: 'tool-result',
            toolCallId: 'c1',
            toolName: 'orders__get_order',
            content: '{"status":"shipped"}',
            isError: false,
          },
          {
            type: 'tool-result',
            toolCallId: 'c2',
            toolName: 'orders__refund_order',
            content: '{"code":"NOT_REFUNDABLE"}',
            isError: true,
          },
        ],
      },
      { role: 'assistant', content: [{ type: 'text', text: 'It shipped.' }] },
    ]);
  });

  it('merges neighbouring messages of one role and starts with a user message', () => {
    const history: StoredMessage[] = [
      { id: 'a0', role: 'assistant', parts: [{ type: 'text', text: 'Hello', state: 'done' }] },
      { id: 'u1', role: 'user', parts: [{ type: 'text', text: 'a', state: 'done' }] },
      { id: 'u2', role: 'user', parts: [{ type: 'text', text: 'b', state: 'done' }] },
    ];
    expect(historyToModelMessages(history)).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'a' },
          { type: 'text', text: 'b' },
        ],
      },
    ]);
  });
});
