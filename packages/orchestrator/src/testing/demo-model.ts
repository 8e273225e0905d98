/**
 * A scripted stand-in for a small tool-using support model, for the demo and for tests that want
 * a plausible model without a provider. It is deterministic: the same request gets the same
 * reply. Serve it with {@link createLocalModelServer}; it speaks through either SDK path.
 *
 * - A router request (system prompt with `Answer with exactly one of`) gets `orders` when the
 *   newest user text mentions an order id, "order" or "refund", else `faq`.
 * - A request whose newest message is the user's text calls one offered tool:
 *   `orders__refund_order` (refund + order id), `orders__get_order` (order id),
 *   `kb__search_articles` (anything else); with none of them offered it answers plainly.
 * - A request whose newest message carries tool results answers in text, summarising them.
 */
import type {
  LocalModelMessage,
  LocalModelReply,
  LocalModelRequest,
  LocalModelToolCall,
  LocalModelToolResult,
} from './local-model-server.js';

/** The marker {@link routeMessage} puts in the router's system prompt. */
export const ROUTER_MARKER = 'Answer with exactly one of';

const ORDER_ID = /\bord_\d+\b/i;
const CHARS_PER_TOKEN = 4;

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function tokens(chars: number): number {
  return Math.max(1, Math.ceil(chars / CHARS_PER_TOKEN));
}

/** Input tokens as a provider would roughly count them: messages plus the offered tools. */
function inputTokensOf(request: LocalModelRequest): number {
  let chars = 0;
  for (const m of request.messages) {
    chars += m.text.length;
    for (const call of m.toolCalls)
      chars += call.name.length + JSON.stringify(call.arguments ?? '').length;
    for (const result of m.toolResults) chars += result.content.length;
  }
  for (const tool of request.tools) {
    chars += tool.name.length + (tool.description?.length ?? 0);
    chars += JSON.stringify(tool.parameters ?? {}).length;
  }
  return tokens(chars);
}

function reply(
  request: LocalModelRequest,
  text: string,
  toolCalls: ReadonlyArray<{ name: string; arguments: object }> = [],
): LocalModelReply {
  const outChars = toolCalls.reduce(
    (n, c) => n + c.name.length + JSON.stringify(c.arguments).length,
    text.length,
  );
  return {
    text,
    ...(toolCalls.length > 0 ? { toolCalls } : {}),
    usage: { inputTokens: inputTokensOf(request), outputTokens: tokens(outChars) },
  };
}

function newestUserText(messages: readonly LocalModelMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role === 'user' && m.text.trim() !== '') return m.text.trim();
  }
  return '';
}

/** The tool results at the end of the conversation (OpenAI sends one `tool` message each). */
function trailingToolResults(messages: readonly LocalModelMessage[]): LocalModelToolResult[] {
  const results: LocalModelToolResult[] = [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.toolResults.length === 0) break;
    results.unshift(...m.toolResults);
    if (m.role !== 'tool') break;
  }
  return results;
}

function findCall(
  messages: readonly LocalModelMessage[],
  id: string,
): LocalModelToolCall | undefined {
  for (const m of messages) {
    const call = m.toolCalls.find((c) => c.id === id);
    if (call) return call;
  }
  return undefined;
}

function parse(content: string): unknown {
  try {
    return JSON.parse(content);
  } catch {
    return content;
  }
}

/** A KeelError as the orchestrator hands it back (`{ code, message, retryable, ... }`). */
function asKeelError(value: unknown): { code: string; message: string } | undefined {
  if (!isRecord(value)) return undefined;
  const { code, message } = value;
  if (typeof code !== 'string' || typeof message !== 'string') return undefined;
  if (!('retryable' in value)) return undefined;
  return { code, message };
}

function money(value: unknown): string {
  if (!isRecord(value) || typeof value['amountCents'] !== 'number') return '';
  const currency = typeof value['currency'] === 'string' ? ` ${value['currency']}` : '';
  return `${(value['amountCents'] / 100).toFixed(2)}${currency}`;
}

function summariseOrder(output: Json): string {
  const items = Array.isArray(output['items']) ? output['items'].filter(isRecord) : [];
  const list = items.map(
    (item) => `${String(item['quantity'] ?? 1)}× ${String(item['name'] ?? item['sku'] ?? 'item')}`,
  );
  const total = money(output['total']);
  return (
    `Order ${String(output['id'])} is ${String(output['status'])}` +
    (list.length > 0 ? `: ${list.join(', ')}` : '') +
    (total !== '' ? ` (total ${total})` : '') +
    '.'
  );
}

function summariseRefund(output: Json): string {
  const amount =
    typeof output['amountCents'] === 'number' ? (output['amountCents'] / 100).toFixed(2) : '?';
  return (
    `Done: refund ${String(output['refundId'])} of ${amount} for ${String(output['orderId'])} is issued; ` +
    `the order is now ${String(output['status'])}.`
  );
}

function summariseSearch(output: Json): string {
  const hits = Array.isArray(output['hits']) ? output['hits'].filter(isRecord) : [];
  const top = hits[0];
  if (top === undefined) return "I couldn't find an article about that in our help centre.";
  const full = typeof top['snippet'] === 'string' ? top['snippet'].replace(/\s+/g, ' ').trim() : '';
  return `Our help article "${String(top['title'])}" covers this${full !== '' ? `: ${firstSentences(full, 160)}` : '.'}`;
}

/**
 * Whole sentences up to `max` characters (a search snippet may stop mid-sentence with `…`),
 * else the first `max` characters and an ellipsis.
 */
function firstSentences(text: string, max: number): string {
  if (text.length <= max && !text.endsWith('…')) return text;
  let end = -1;
  for (const match of text.slice(0, max + 1).matchAll(/[^\d\s][.?!](?=\s+[A-Z])/g)) {
    end = match.index + 2;
  }
  if (end > 0) return text.slice(0, end);
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

function summarise(name: string, result: LocalModelToolResult): string {
  const value = parse(result.content);
  const error = asKeelError(value);
  if (result.isError || error !== undefined) {
    return error !== undefined
      ? `Sorry, ${name} failed: ${error.code} — ${error.message}`
      : `Sorry, ${name} failed: ${result.content.slice(0, 200)}`;
  }
  if (isRecord(value)) {
    if (name.endsWith('refund_order') && 'refundId' in value) return summariseRefund(value);
    if (name.endsWith('get_order') && 'status' in value) return summariseOrder(value);
    if (name.endsWith('search_articles') && 'hits' in value) return summariseSearch(value);
  }
  const shown = result.content.length > 200 ? `${result.content.slice(0, 200)}…` : result.content;
  return `${name} returned ${shown}`;
}

/**
 * The demo model's script for {@link createLocalModelServer}.
 *
 * @example
 * ```ts
 * const server = await createLocalModelServer({ script: demoModelScript });
 * ```
 */
export function demoModelScript(request: LocalModelRequest): LocalModelReply {
  const { messages } = request;
  const userText = newestUserText(messages);
  const lowered = userText.toLowerCase();
  const orderId = ORDER_ID.exec(userText)?.[0]?.toLowerCase();

  const isRouter = messages.some((m) => m.role === 'system' && m.text.includes(ROUTER_MARKER));
  if (isRouter) {
    const orders = orderId !== undefined || lowered.includes('order') || lowered.includes('refund');
    return reply(request, orders ? 'orders' : 'faq');
  }

  const results = trailingToolResults(messages);
  if (results.length > 0) {
    const text = results
      .map((result) => summarise(findCall(messages, result.toolCallId)?.name ?? 'the tool', result))
      .join(' ');
    return reply(request, text);
  }

  const offered = new Set(request.tools.map((t) => t.name));
  if (orderId !== undefined && lowered.includes('refund') && offered.has('orders__refund_order')) {
    // The words after the order id ("..., it arrived damaged."), else the whole message.
    const after = userText
      .slice(userText.toLowerCase().indexOf(orderId) + orderId.length)
      .replace(/^[\s,.;:!?-]+/, '')
      .replace(/[\s.!?]+$/, '');
    const reason = (after.length >= 3 ? after : userText).slice(0, 200);
    return reply(request, `I'll request a refund for ${orderId}.`, [
      { name: 'orders__refund_order', arguments: { orderId, reason } },
    ]);
  }
  if (orderId !== undefined && offered.has('orders__get_order')) {
    return reply(request, `Let me look up ${orderId}.`, [
      { name: 'orders__get_order', arguments: { orderId } },
    ]);
  }
  if (offered.has('kb__search_articles') && userText.length >= 2) {
    const query = userText
      .replace(/[?!.,]/g, ' ')
      .replace(/\s+/g, ' ')
      .trim()
      .slice(0, 200);
    return reply(request, 'Let me check our help centre.', [
      { name: 'kb__search_articles', arguments: { query: query.length >= 2 ? query : userText } },
    ]);
  }
  return reply(
    request,
    userText === ''
      ? 'Hello! How can I help you today?'
      : 'I can help with your orders, refunds and questions about our policies. What do you need?',
  );
}
