import {
  APIConnectionError as AnthropicConnectionError,
  APIConnectionTimeoutError as AnthropicTimeoutError,
  APIError as AnthropicApiError,
  APIUserAbortError as AnthropicAbortError,
} from '@anthropic-ai/sdk';
import {
  APIError as OpenAIApiError,
  APIConnectionError as OpenAIConnectionError,
  OpenAIError,
} from 'openai';
import { describe, expect, it } from 'vitest';
import {
  classifyProviderError,
  isProviderAbort,
  providerStreamError,
} from './classify-provider-error.js';
import { ModelCallError } from './model-provider.js';

const anthropic = { provider: 'anthropic' as const, model: 'claude-x' };
const openai = { provider: 'openai' as const, model: 'gpt-x' };

function anthropicStatus(status: number, type: string, message = 'm', headers = new Headers()) {
  return AnthropicApiError.generate(
    status,
    { type: 'error', error: { type, message } },
    undefined,
    headers,
  );
}
function openaiStatus(status: number, type: string, message = 'm') {
  return OpenAIApiError.generate(status, { error: { type, message } }, undefined, new Headers());
}

describe('classifyProviderError', () => {
  it.each([
    [429, 'rate_limit_error', 'RATE_LIMITED'],
    [408, 'timeout_error', 'TIMEOUT'],
    [500, 'api_error', 'UNAVAILABLE'],
    [503, 'api_error', 'UNAVAILABLE'],
    [504, 'api_error', 'TIMEOUT'],
    [529, 'overloaded_error', 'UNAVAILABLE'],
  ])('Anthropic %i is transient %s', (status, type, code) => {
    const error = classifyProviderError(anthropicStatus(status, type), anthropic);
    expect(error).toBeInstanceOf(ModelCallError);
    expect(error.transient).toBe(true);
    expect(error.status).toBe(status);
    expect(error.keel).toMatchObject({
      code,
      retryable: true,
      details: { provider: 'anthropic', model: 'claude-x', status, providerErrorType: type },
    });
  });

  it.each([
    [400, 'INVALID_INPUT'],
    [401, 'UNAUTHENTICATED'],
    [403, 'FORBIDDEN'],
    [404, 'NOT_FOUND'],
    [422, 'INVALID_INPUT'],
  ])('OpenAI %i is not transient (%s)', (status, code) => {
    const error = classifyProviderError(openaiStatus(status, 'invalid_request_error'), openai);
    expect(error.transient).toBe(false);
    expect(error.keel).toMatchObject({
      code,
      retryable: false,
      details: { provider: 'openai', status },
    });
  });

  it('a status-less stream error is classified by its type', () => {
    const overloaded = new AnthropicApiError(
      undefined,
      { type: 'error', error: { type: 'overloaded_error', message: 'busy' } },
      undefined,
      new Headers(),
    );
    expect(classifyProviderError(overloaded, anthropic)).toMatchObject({
      transient: true,
      keel: { code: 'UNAVAILABLE' },
    });
    const invalid = new OpenAIApiError(
      undefined,
      { type: 'invalid_request_error', message: 'no' },
      undefined,
      new Headers(),
    );
    expect(classifyProviderError(invalid, openai).transient).toBe(true);
  });

  it('connection failures and timeouts are transient', () => {
    expect(classifyProviderError(new AnthropicTimeoutError(), anthropic).keel.code).toBe('TIMEOUT');
    expect(classifyProviderError(new AnthropicConnectionError({}), anthropic).keel.code).toBe(
      'UNAVAILABLE',
    );
    expect(classifyProviderError(new OpenAIConnectionError({}), openai).transient).toBe(true);
    expect(classifyProviderError(new TypeError('terminated'), openai).transient).toBe(true);
  });

  it('reads retry-after into retryAfterMs', () => {
    const error = anthropicStatus(
      429,
      'rate_limit_error',
      'slow',
      new Headers({ 'retry-after': '3' }),
    );
    expect(classifyProviderError(error, anthropic).keel.retryAfterMs).toBe(3000);
  });

  it('never puts a key, a token or a stack in the message', () => {
    const leaky = openaiStatus(
      400,
      'invalid_request_error',
      'bad key sk-proj-abcdef1234567890 and Bearer xyz.abc',
    );
    const keel = classifyProviderError(leaky, openai).keel;
    expect(keel.message).not.toContain('sk-proj');
    expect(keel.message).not.toContain('xyz.abc');
    expect(keel.message).not.toMatch(/\bat .*\.js:\d+/);
    const unauthorized = classifyProviderError(
      openaiStatus(401, 'x', 'Incorrect API key: sk-abc'),
      openai,
    );
    expect(unauthorized.keel.message).not.toContain('sk-abc');
    expect(unauthorized.keel.message).toBe('openai model gpt-x: API key rejected (HTTP 401)');
  });

  it('unknown errors are INTERNAL and not transient; ModelCallErrors pass through', () => {
    expect(classifyProviderError(new Error('weird'), openai)).toMatchObject({
      transient: false,
      keel: { code: 'INTERNAL' },
    });
    const own = classifyProviderError(openaiStatus(429, 'x'), openai);
    expect(classifyProviderError(own, anthropic)).toBe(own);
  });

  it('an SDK refusal before sending is a non-transient setup failure', () => {
    const error = classifyProviderError(
      new OpenAIError('The OPENAI_API_KEY environment variable is missing'),
      openai,
    );
    expect(error.transient).toBe(false);
    expect(error.keel.message).toContain('client setup failed');
    expect(error.keel.message).toContain('OPENAI_API_KEY');
  });

  it('uses the given correlation id', () => {
    expect(
      classifyProviderError(new Error('x'), { ...openai, correlationId: 'c-1' }).keel.correlationId,
    ).toBe('c-1');
  });
});

describe('providerStreamError', () => {
  it('returns the abort reason unwrapped when the signal aborted', () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    expect(providerStreamError(new AnthropicAbortError(), controller.signal, anthropic)).toBe(
      controller.signal.reason,
    );
    expect(isProviderAbort(new AnthropicAbortError())).toBe(true);
    expect(providerStreamError(new AnthropicAbortError(), undefined, anthropic)).toBeInstanceOf(
      AnthropicAbortError,
    );
  });
});
