import { describe, expect, it } from 'vitest';
import { matchesToolGlobs, renderPrompt, templateVariables } from './agent-config.js';
import { ConfigError } from './config-error.js';

describe('renderPrompt', () => {
  it('fills every variable, spaces inside the braces allowed', () => {
    expect(
      renderPrompt('Hi {{NAME}}, from {{ COMPANY }}. {{NAME}}!', { NAME: 'Ada', COMPANY: 'Acme' }),
    ).toBe('Hi Ada, from Acme. Ada!');
    expect(templateVariables('{{A}} {{B}} {{A}}')).toEqual(['A', 'B']);
  });

  it('S15: a missing template variable names the file, field and fix', () => {
    let error: unknown;
    try {
      renderPrompt(
        'Hi {{NAME}} of {{COMPANY}}',
        { NAME: 'Ada' },
        { file: 'agents/support/prompt.md' },
      );
    } catch (e) {
      error = e;
    }
    expect(ConfigError.isInstance(error)).toBe(true);
    expect((error as ConfigError).code).toBe('INVALID_CONFIG');
    expect((error as ConfigError).message).toBe(
      'agents/support/prompt.md: prompt: template variable {{COMPANY}} has no value — pass COMPANY in the session input variables, or remove it from the prompt',
    );
  });
});

describe('matchesToolGlobs', () => {
  it('matches whole exposed names with * and ?', () => {
    expect(matchesToolGlobs('orders__refund', ['orders__*'])).toBe(true);
    expect(matchesToolGlobs('kb__search', ['orders__*'])).toBe(false);
    expect(matchesToolGlobs('orders__get_order', ['orders__get_orde?'])).toBe(true);
    expect(matchesToolGlobs('xorders__get', ['orders__*'])).toBe(false);
    expect(matchesToolGlobs('my-srv__tool', ['my-srv__*'])).toBe(true);
  });
});
