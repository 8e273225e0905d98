import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTER_MARKER, demoModelScript } from './demo-model.js';
import { createLocalModelServer } from './local-model-server.js';
import type { LocalModelServer } from './local-model-server.js';

let server: LocalModelServer;
let anthropic: Anthropic;
let openai: OpenAI;

beforeAll(async () => {
  server = await createLocalModelServer({ script: demoModelScript, chunkSize: 6 });
  anthropic = new Anthropic({ apiKey: 'k', baseURL: server.anthropicBaseUrl, maxRetries: 0 });
  openai = new OpenAI({ apiKey: 'k', baseURL: server.openaiBaseUrl, maxRetries: 0 });
});
afterAll(() => server.close());

const schema = (properties: Record<string, unknown>) => ({
  type: 'object' as const,
  properties,
});
const getOrder = {
  name: 'orders__get_order',
  description: 'Look up one order',
  input_schema: schema({ orderId: { type: 'string' } }),
};
const refundOrder = {
  name: 'orders__refund_order',
  description: 'Refund an order',
  input_schema: schema({ orderId: { type: 'string' }, reason: { type: 'string' } }),
};
const searchArticles = {
  type: 'function' as const,
  function: {
    name: 'kb__search_articles',
    description: 'Search the help centre',
    parameters: schema({ query: { type: 'string' } }),
  },
};

async function route(text: string): Promise<string> {
  const completion = await openai.chat.completions.create({
    model: 'router',
    stream: true,
    messages: [
      {
        role: 'system',
        content: `Pick a handler.\n\n${ROUTER_MARKER}: "orders" (...), "faq" (...).`,
      },
      { role: 'user', content: text },
    ],
  });
  let answer = '';
  for await (const chunk of completion) answer += chunk.choices[0]?.delta.content ?? '';
  return answer;
}

describe('demo model', () => {
  it('routes order and refund questions to "orders", the rest to "faq"', async () => {
    expect(await route('Where is my order ord_1004?')).toBe('orders');
    expect(await route('Please refund it')).toBe('orders');
    expect(await route('What is your return policy?')).toBe('faq');
  });

  it('looks an order up with orders__get_order, then answers with its status and items (Anthropic)', async () => {
    const question = { role: 'user' as const, content: 'Where is my order ord_1004?' };
    const first = await anthropic.messages
      .stream({
        model: 'smart',
        max_tokens: 500,
        messages: [question],
        tools: [getOrder, refundOrder],
      })
      .finalMessage();
    expect(first.stop_reason).toBe('tool_use');
    const call = first.content.find((b) => b.type === 'tool_use');
    expect(call).toMatchObject({ name: 'orders__get_order', input: { orderId: 'ord_1004' } });
    expect(first.usage.input_tokens).toBeGreaterThan(20);

    const order = {
      id: 'ord_1004',
      status: 'shipped',
      total: { amountCents: 4500, currency: 'EUR' },
      items: [{ sku: 'SKU-MUG', name: 'Mug', quantity: 2, unitCents: 1500 }],
    };
    const deltas: string[] = [];
    const stream = anthropic.messages.stream({
      model: 'smart',
      max_tokens: 500,
      tools: [getOrder, refundOrder],
      messages: [
        question,
        { role: 'assistant', content: first.content },
        {
          role: 'user',
          content: [
            {
              type: 'tool_result',
              tool_use_id: call!.type === 'tool_use' ? call!.id : '',
              content: JSON.stringify(order),
            },
          ],
        },
      ],
    });
    stream.on('text', (t) => deltas.push(t));
    const second = await stream.finalMessage();
    expect(second.stop_reason).toBe('end_turn');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join('')).toBe('Order ord_1004 is shipped: 2× Mug (total 45.00 EUR).');
    expect(second.usage.output_tokens).toBeGreaterThan(5);
  });

  it('asks for a refund with the order id and a reason, and reports a KeelError it gets back', async () => {
    const question = {
      role: 'user' as const,
      content: 'Please refund ord_1003, it arrived damaged.',
    };
    const first = await anthropic.messages.create({
      model: 'smart',
      max_tokens: 500,
      messages: [question],
      tools: [getOrder, refundOrder],
    });
    const call = first.content.find((b) => b.type === 'tool_use');
    expect(call).toMatchObject({
      name: 'orders__refund_order',
      input: { orderId: 'ord_1003', reason: 'it arrived damaged' },
    });
    const error = {
      code: 'ORDER_NOT_REFUNDABLE',
      message: 'ord_1003 is already refunded',
      retryable: false,
    };
    const second = await anthropic.messages.create({
      model: 'smart',
      max_tokens: 500,
      tools: [getOrder, refundOrder],
      messages: [
        question,
        { role: 'assistant', content: first.content },
        {
          role: 'user',
          content: [
            {
              type: 'tool_result',
              tool_use_id: call!.type === 'tool_use' ? call!.id : '',
              content: JSON.stringify(error),
              is_error: true,
            },
          ],
        },
      ],
    });
    expect(second.content).toMatchObject([
      {
        type: 'text',
        text: 'Sorry, orders__refund_order failed: ORDER_NOT_REFUNDABLE — ord_1003 is already refunded',
      },
    ]);
  });

  it('searches the knowledge base and names the top article (OpenAI)', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: 'system', content: 'You are support.' },
      { role: 'user', content: 'What is your return policy?' },
    ];
    const first = await openai.chat.completions.create({
      model: 'fast',
      messages,
      tools: [searchArticles],
    });
    const call = first.choices[0]!.message.tool_calls?.[0];
    expect(call?.type === 'function' && call.function.name).toBe('kb__search_articles');
    expect(call?.type === 'function' && JSON.parse(call.function.arguments)).toEqual({
      query: 'What is your return policy',
    });
    // Long or cut-off snippets are cut at a sentence end within 160 characters.
    const snippet = `Return within 30 days. ${'Long details follow here. '.repeat(5)}Step 1. Sign in and…`;
    const hits = { hits: [{ id: 'returns', title: 'Returns', score: 3.2, snippet }] };
    const second = await openai.chat.completions.create({
      model: 'fast',
      tools: [searchArticles],
      messages: [
        ...messages,
        first.choices[0]!.message,
        { role: 'tool', tool_call_id: call!.id, content: JSON.stringify(hits) },
      ],
    });
    expect(second.choices[0]!.message.content).toBe(
      `Our help article "Returns" covers this: Return within 30 days. ${'Long details follow here. '.repeat(5).trim()}`,
    );
    expect(second.choices[0]!.finish_reason).toBe('stop');
  });

  it('answers plainly when no tool fits', async () => {
    const completion = await openai.chat.completions.create({
      model: 'fast',
      messages: [{ role: 'user', content: 'Where is ord_1001?' }],
    });
    expect(completion.choices[0]!.message.tool_calls).toBeUndefined();
    expect(completion.choices[0]!.message.content).toMatch(/help with your orders/);
  });
});
