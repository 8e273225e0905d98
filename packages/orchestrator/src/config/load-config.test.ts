import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from './config-error.js';
import {
  checkModelAliases,
  loadAgentConfig,
  loadAgents,
  loadModels,
  parseAgent,
  parseModels,
} from './load-config.js';

const EXAMPLES = resolve(import.meta.dirname, '../../../../examples');

const MODELS = `models:
  fast:
    - provider: anthropic
      model: claude-haiku-4-5
      prices: { inputPerMTok: 1, outputPerMTok: 5 }
      contextWindow: 200000
`;

/** The ConfigError a call throws (fails the test if it throws nothing or something else). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(ConfigError.isInstance(error)).toBe(true);
    const e = error as ConfigError;
    expect(e.code).toBe('INVALID_CONFIG');
    expect(e.message).not.toMatch(/\n\s+at |Error:|ZodError/);
    return e;
  }
  throw new Error('expected a ConfigError');
}

async function configErrorAsync(promise: Promise<unknown>): Promise<ConfigError> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  return configError(() => {
    if (error) throw error;
  });
}

describe('example files', () => {
  it('examples/agents and examples/models.yaml load and agree', async () => {
    const { agents, models } = await loadAgentConfig(
      join(EXAMPLES, 'agents'),
      join(EXAMPLES, 'models.yaml'),
    );
    expect(agents.map((a) => a.name)).toEqual(['support']);
    const support = agents[0]!;
    expect(support.tools).toEqual(['orders__*', 'kb__*']);
    expect(support.approval).toEqual(['orders__refund*']);
    expect(support.prompt).toContain('{{CUSTOMER_NAME}}');
    expect(Object.keys(support.handlers)).toEqual(['faq', 'orders']);
    expect(support.router?.model).toBe('fast');
    expect(models.models.fast?.map((m) => m.provider)).toEqual(['anthropic', 'openai']);
    expect(models.models.smart?.map((m) => m.provider)).toEqual(['anthropic', 'openai']);
  });
});

describe('parseAgent', () => {
  it('fills defaults for a minimal agent', () => {
    const agent = parseAgent('name: helper\nmodel: fast\nprompt: You help.\n', 'helper.yaml');
    expect(agent).toMatchObject({
      name: 'helper',
      description: '',
      prompt: 'You help.',
      tools: [],
      approval: [],
      handlers: {},
      limits: { maxSteps: 10, maxToolCalls: 20, maxTokensPerTurn: 4096 },
      context: { strategy: 'window' },
    });
    expect(agent.limits.budgetUsd).toBeUndefined();
    expect(agent.router).toBeUndefined();
  });

  it('S15: an unknown key is named with a did-you-mean', () => {
    const e = configError(() =>
      parseAgent('name: a\nmodel: fast\nprompt: x\nlimits:\n  maxStep: 3\n', 'a.yaml'),
    );
    expect(e.message).toBe('a.yaml:5: limits.maxStep: unknown field — did you mean "maxSteps"?');
  });

  it('S15: a wrong type names file, line, field and fix', () => {
    const e = configError(() =>
      parseAgent('name: a\nmodel: fast\nprompt: x\nlimits:\n  maxSteps: "ten"\n', 'a.yaml'),
    );
    expect(e.message).toMatch(
      /^a\.yaml:5: limits\.maxSteps: expected a number, got "ten" — write a number$/,
    );
  });

  it('S15: a duplicate key is refused', () => {
    const e = configError(() =>
      parseAgent('name: a\nmodel: fast\nmodel: smart\nprompt: x\n', 'a.yaml'),
    );
    expect(e.message).toMatch(/^a\.yaml:3: model: .*unique.* — remove or rename one of them$/);
  });

  it('S15: a bad tool glob is named with the allowed form', () => {
    const e = configError(() =>
      parseAgent(
        'name: a\nmodel: fast\nprompt: x\ntools:\n  - orders__*\n  - "Orders[1]"\n',
        'a.yaml',
      ),
    );
    expect(e.message).toMatch(
      /^a\.yaml:6: tools\[1\]: "Orders\[1\]" is not a valid tool glob — use .*orders__\*/,
    );
  });

  it('S15: a missing prompt file names the field and the fix', () => {
    const e = configError(() =>
      parseAgent('name: a\nmodel: fast\npromptFile: nope.md\n', '/tmp/agents/a.yaml', {
        readPromptFile: () => {
          throw Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
        },
      }),
    );
    expect(e.message).toBe(
      '/tmp/agents/a.yaml:3: promptFile: cannot read "nope.md" (ENOENT) — create it next to /tmp/agents/a.yaml, or fix the path',
    );
  });

  it('S15: no prompt at all, or both prompt and promptFile, are refused', () => {
    expect(configError(() => parseAgent('name: a\nmodel: fast\n', 'a.yaml')).message).toMatch(
      /^a\.yaml: prompt: is missing — add prompt:/,
    );
    expect(
      configError(() =>
        parseAgent('name: a\nmodel: fast\nprompt: x\npromptFile: p.md\n', 'a.yaml', {
          readPromptFile: () => 'y',
        }),
      ).message,
    ).toMatch(/promptFile: is set together with prompt — keep only one/);
  });

  it('S15: a wrong enum value lists the allowed ones', () => {
    const e = configError(() =>
      parseAgent('name: a\nmodel: fast\nprompt: x\ncontext:\n  strategy: full\n', 'a.yaml'),
    );
    expect(e.message).toBe(
      'a.yaml:5: context.strategy: "full" is not allowed — use one of "window", "summary"',
    );
  });

  it('S15: an alias bomb is refused', () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]',
      'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]',
    ].join('\n');
    expect(configError(() => parseAgent(bomb, 'a.yaml')).message).toMatch(
      /^a\.yaml: too many YAML alias expansions — /,
    );
  });

  it('S15: a router needs handlers to choose from', () => {
    const e = configError(() =>
      parseAgent(
        'name: a\nmodel: fast\nprompt: x\nrouter:\n  model: fast\n  prompt: pick\n',
        'a.yaml',
      ),
    );
    expect(e.message).toMatch(
      /a\.yaml:4: router: has fewer than two handlers .* — add handlers, or remove router/,
    );
  });
});

describe('parseModels', () => {
  it('loads aliases as ordered lists', () => {
    const models = parseModels(MODELS, 'models.yaml');
    expect(models.models.fast?.[0]).toMatchObject({ provider: 'anthropic', contextWindow: 200000 });
  });

  it('S15: a negative price names the field and the range', () => {
    const e = configError(() =>
      parseModels(MODELS.replace('outputPerMTok: 5', 'outputPerMTok: -5'), 'models.yaml'),
    );
    expect(e.message).toBe(
      'models.yaml:5: models.fast[0].prices.outputPerMTok: -5 is out of range — use a number ≥ 0',
    );
  });

  it('S15: an unknown provider and a misspelt field are both listed', () => {
    const e = configError(() =>
      parseModels(
        MODELS.replace('anthropic', 'gemini').replace('contextWindow', 'contextWindw'),
        'models.yaml',
      ),
    );
    expect(e.message).toContain(
      'models.yaml:3: models.fast[0].provider: "gemini" is not allowed — use one of "anthropic", "openai"',
    );
    expect(e.message).toContain(
      'models.yaml:6: models.fast[0].contextWindw: unknown field — did you mean "contextWindow"?',
    );
  });

  it('S15: an empty fallback list is refused', () => {
    expect(configError(() => parseModels('models:\n  fast: []\n', 'models.yaml')).message).toMatch(
      /^models\.yaml:2: models\.fast: lists 0 items — list at least 1$/,
    );
  });
});

describe('loadAgents / loadModels / checkModelAliases', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keel-agents-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads single files and folders, prompt files relative to the agent file', async () => {
    await writeFile(join(dir, 'one.yaml'), 'name: one\nmodel: fast\nprompt: One.\n');
    await mkdir(join(dir, 'two'));
    await writeFile(join(dir, 'two', 'agent.yaml'), 'name: two\nmodel: fast\npromptFile: p.md\n');
    await writeFile(join(dir, 'two', 'p.md'), 'Two for {{USER}}.');
    await writeFile(join(dir, 'README.md'), 'not an agent');
    const agents = await loadAgents(dir);
    expect(agents.map((a) => [a.name, a.prompt])).toEqual([
      ['one', 'One.'],
      ['two', 'Two for {{USER}}.'],
    ]);
  });

  it('S15: a missing prompt file in a folder agent is named', async () => {
    await mkdir(join(dir, 'two'));
    const file = join(dir, 'two', 'agent.yaml');
    await writeFile(file, 'name: two\nmodel: fast\npromptFile: prompt.md\n');
    const e = await configErrorAsync(loadAgents(dir));
    expect(e.message).toBe(
      `${file}:3: promptFile: cannot read "prompt.md" (ENOENT) — create it next to ${file}, or fix the path`,
    );
  });

  it('S15: problems of several files are reported together; duplicate names refused', async () => {
    await writeFile(join(dir, 'a.yaml'), 'name: same\nmodel: fast\nprompt: A\n');
    await writeFile(join(dir, 'b.yaml'), 'name: same\nmodel: fast\nprompt: B\n');
    await writeFile(join(dir, 'c.yaml'), 'name: c\nmodel: 7\nprompt: C\n');
    const e = await configErrorAsync(loadAgents(dir));
    const lines = e.message.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/c\.yaml:2: model: expected a string, got 7 — write a string$/);
    expect(lines[1]).toMatch(
      /b\.yaml: name: "same" is also the name of the agent in .*a\.yaml — give each agent its own name$/,
    );
  });

  it('S15: an unknown model alias names the agent file, field and the known aliases', async () => {
    const file = join(dir, 'a.yaml');
    await writeFile(file, 'name: a\nmodel: fast\nprompt: x\nhandlers:\n  big:\n    model: huge\n');
    const models = join(dir, 'config', 'models.yaml');
    await mkdir(join(dir, 'config'));
    await writeFile(models, MODELS);
    const agents = await loadAgents(dir);
    const e = configError(() => checkModelAliases(agents, parseModels(MODELS, models)));
    expect(e.message).toBe(
      `${file}:6: handlers.big.model: model alias "huge" is not in ${models} — use one of fast, or add it under models:`,
    );
    await expect(loadAgentConfig(dir, models)).rejects.toThrow(/model alias "huge"/);
  });

  it('S15: an unreadable models.yaml names the file', async () => {
    const e = await configErrorAsync(loadModels(join(dir, 'missing.yaml')));
    expect(e.message).toMatch(/missing\.yaml: cannot read the file \(ENOENT\) — check the path/);
  });
});

describe('S15 messages for keys and forms', () => {
  it('S15: a bad model alias key, a swapped-letter field and a bad thinking value', () => {
    const bad = configError(() =>
      parseModels(
        'models:\n  Fast:\n    - provider: openai\n      model: x\n      prices: { inputPerMTok: 1, outputPerMTok: 1 }\n      contextWindow: 1\n',
        'm.yaml',
      ),
    );
    expect(bad.message).toBe(
      'm.yaml:2: models.Fast: key "Fast" is not a valid model alias — use lowercase letters, digits, "-" or "_" (e.g. fast, smart)',
    );
    const typo = configError(() =>
      parseAgent('name: a\nmodel: fast\nprompt: x\nhandlers:\n  ok:\n    modle: fast\n', 'a.yaml'),
    );
    expect(typo.message).toBe('a.yaml:6: handlers.ok.modle: unknown field — did you mean "model"?');
    const thinking = configError(() => parseModels(MODELS + '      thinking: yes\n', 'm.yaml'));
    expect(thinking.message).toBe(
      'm.yaml:7: models.fast[0].thinking: "yes" is not a thinking setting — write true, false, or { budgetTokens: 4096 }',
    );
  });
});
