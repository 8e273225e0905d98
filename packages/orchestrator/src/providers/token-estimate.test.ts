import { describe, expect, it } from 'vitest';
import type { ModelMessage } from './model-provider.js';
import {
  estimateMessageTokens,
  estimateRequestTokens,
  estimateSystemTokens,
  estimateTextTokens,
  estimateToolsTokens,
  fitToWindow,
  MESSAGE_OVERHEAD_TOKENS,
  TOOL_PART_OVERHEAD_TOKENS,
} from './token-estimate.js';

const user = (text: string): ModelMessage => ({ role: 'user', content: [{ type: 'text', text }] });
const assistant = (text: string): ModelMessage => ({
  role: 'assistant',
  content: [{ type: 'text', text }],
});
const call = (id: string): ModelMessage => ({
  role: 'assistant',
  content: [{ type: 'tool-call', toolCallId: id, toolName: 'orders__get', input: { id: 'o-1' } }],
});
const result = (id: string, content = '{"status":"shipped"}'): ModelMessage => ({
  role: 'user',
  content: [
    { type: 'tool-result', toolCallId: id, toolName: 'orders__get', content, isError: false },
  ],
});

describe('estimates', () => {
  it('counts characters / 3.5 rounded up', () => {
    expect(estimateTextTokens('')).toBe(0);
    expect(estimateTextTokens('abc')).toBe(1);
    expect(estimateTextTokens('a'.repeat(7))).toBe(2);
    expect(estimateTextTokens('a'.repeat(8))).toBe(3);
  });

  it('adds a per-message overhead and a per-tool-part overhead', () => {
    expect(estimateMessageTokens(user('a'.repeat(35)))).toBe(10 + MESSAGE_OVERHEAD_TOKENS);
    const content = 'x'.repeat(70);
    expect(estimateMessageTokens(result('t', content))).toBe(
      MESSAGE_OVERHEAD_TOKENS + TOOL_PART_OVERHEAD_TOKENS + 20,
    );
    expect(estimateMessageTokens(call('t'))).toBeGreaterThan(
      MESSAGE_OVERHEAD_TOKENS + TOOL_PART_OVERHEAD_TOKENS,
    );
  });

  it('errs high against a 4-chars-per-token count', () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(50);
    expect(estimateTextTokens(text)).toBeGreaterThan(text.length / 4);
  });

  it('a request sums system, tools and messages', () => {
    const tools = [
      { name: 'orders__get', description: 'Get an order', inputSchema: { type: 'object' } },
    ];
    const messages = [user('hello'), assistant('hi there')];
    expect(estimateRequestTokens({ system: 'Be brief.', tools, messages })).toBe(
      estimateSystemTokens('Be brief.') +
        estimateToolsTokens(tools) +
        estimateMessageTokens(messages[0] as ModelMessage) +
        estimateMessageTokens(messages[1] as ModelMessage),
    );
    expect(estimateSystemTokens('')).toBe(0);
    expect(estimateToolsTokens(tools)).toBeGreaterThan(0);
  });
});

describe('fitToWindow', () => {
  const sizes = (messages: readonly ModelMessage[]): number =>
    messages.reduce((n, m) => n + estimateMessageTokens(m), 0);
  const window = (messageBudget: number) => ({
    contextWindow: messageBudget + 100 + 30 + 20,
    maxOutputTokens: 100,
    systemTokens: 30,
    toolsTokens: 20,
  });

  it('keeps everything that fits, returning the same array', () => {
    const history = [assistant('Welcome!'), user('hello'), assistant('hi')];
    const out = fitToWindow(history, window(sizes(history)));
    expect(out.messages).toBe(history);
    expect(out).toMatchObject({ dropped: 0, fits: true, messageTokens: sizes(history) });
  });

  it('drops the oldest messages, starting the kept part at a user message', () => {
    const history = [user('a'.repeat(350)), assistant('b'.repeat(350)), user('c'), assistant('d')];
    const copy = [...history];
    const out = fitToWindow(history, window(sizes(history.slice(2))));
    expect(out.messages).toEqual(history.slice(2));
    expect(out).toMatchObject({ dropped: 2, fits: true });
    expect(history).toEqual(copy);
  });

  it('never starts at a tool result nor splits a tool call from its result', () => {
    const history = [
      user('x'.repeat(700)),
      call('t1'),
      result('t1'),
      assistant('The order shipped.'),
      user('thanks'),
      assistant('welcome'),
    ];
    // Enough for everything from call('t1') on, but the cut must not start at a call or result.
    const budget = sizes(history.slice(1));
    const out = fitToWindow(history, window(budget));
    expect(out.messages[0]).toBe(history[4]);
    expect(out.dropped).toBe(4);
    expect(out.fits).toBe(true);
    for (const [i, m] of out.messages.entries()) {
      if (m.content.some((p) => p.type === 'tool-result')) {
        expect(out.messages[i - 1]?.content.some((p) => p.type === 'tool-call')).toBe(true);
      }
    }
  });

  it('keeps a call and its result together when both fit', () => {
    const history = [
      user('x'.repeat(700)),
      assistant('ok'),
      user('check order'),
      call('t1'),
      result('t1'),
    ];
    const out = fitToWindow(history, window(sizes(history.slice(2))));
    expect(out.messages).toEqual(history.slice(2));
  });

  it('when nothing fits, returns the last user message and says it does not fit', () => {
    const history = [user('a'.repeat(100)), assistant('b'), user('c'.repeat(1000))];
    const out = fitToWindow(history, window(10));
    expect(out.messages).toEqual([history[2]]);
    expect(out).toMatchObject({ dropped: 2, fits: false });
  });

  it('an empty history fits', () => {
    expect(fitToWindow([], window(0))).toEqual({
      messages: [],
      dropped: 0,
      messageTokens: 0,
      fits: true,
    });
  });
});
