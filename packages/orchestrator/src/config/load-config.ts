/**
 * Reading agent files and `models.yaml`: YAML (duplicate keys and alias bombs refused) →
 * schema → prompt files read → every model alias checked against `models.yaml`.
 *
 * Every problem stops start-up with one {@link ConfigError} `INVALID_CONFIG` whose message
 * lists each problem as `file:line: field: problem — fix` (RELIABILITY.md S15).
 */
import { readFileSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { agentFileSchema } from './agent-config.js';
import type { AgentConfig, AgentHandler } from './agent-config.js';
import { ConfigError } from './config-error.js';
import { formatConfigPath, issuesFromZod } from './config-issues.js';
import type { ConfigIssue, ConfigPath } from './config-issues.js';
import { modelsConfigSchema } from './models-config.js';
import type { ModelsConfig } from './models-config.js';
import { parseYamlSource } from './yaml-source.js';

/** Options of {@link parseAgent}. */
export interface ParseAgentOptions {
  /** Reads a prompt file (an absolute path); `readFileSync` by default. */
  readPromptFile?: (path: string) => string;
}

/**
 * Validate one agent file's text. `file` names it in messages and anchors `promptFile`.
 *
 * @throws ConfigError `INVALID_CONFIG` naming the file, the field and the fix.
 *
 * @example
 * ```ts
 * const agent = parseAgent('name: support\nmodel: fast\nprompt: You help.', 'support.yaml');
 * agent.limits.maxSteps; // 10
 * ```
 */
export function parseAgent(
  text: string,
  file: string,
  options: ParseAgentOptions = {},
): AgentConfig {
  const read = options.readPromptFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const { data, lineOf } = parseYamlSource(text, file, 'name:, model:, prompt:, ...');
  const parsed = agentFileSchema.safeParse(data, { reportInput: true });
  if (!parsed.success)
    throw new ConfigError(file, issuesFromZod(parsed.error, agentFileSchema, lineOf));
  const agent = parsed.data;

  const issues: ConfigIssue[] = [];
  const promptOf = (
    owner: { prompt?: string | undefined; promptFile?: string | undefined },
    path: ConfigPath,
  ): string | undefined => {
    if (owner.promptFile === undefined) return owner.prompt;
    const field = [...path, 'promptFile'];
    const line = lineOf(field);
    const issue = (message: string) =>
      issues.push({
        path: formatConfigPath(field),
        message,
        ...(line === undefined ? {} : { line }),
      });
    if (isAbsolute(owner.promptFile)) {
      issue(
        `${JSON.stringify(owner.promptFile)} is an absolute path — write it relative to ${file}`,
      );
      return undefined;
    }
    const full = resolve(dirname(file), owner.promptFile);
    try {
      const text = read(full);
      if (text.trim() === '')
        issue(`${JSON.stringify(owner.promptFile)} is empty — write the prompt in it`);
      return text;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      issue(
        `cannot read ${JSON.stringify(owner.promptFile)} (${code}) — create it next to ${file}, or fix the path`,
      );
      return undefined;
    }
  };

  const prompt = promptOf(agent, []) ?? '';
  const handlers: Record<string, AgentHandler> = {};
  for (const [name, handler] of Object.entries(agent.handlers)) {
    const handlerPrompt = promptOf(handler, ['handlers', name]);
    handlers[name] = {
      description: handler.description,
      ...(handler.model === undefined ? {} : { model: handler.model }),
      ...(handlerPrompt === undefined ? {} : { prompt: handlerPrompt }),
      ...(handler.tools === undefined ? {} : { tools: handler.tools }),
    };
  }
  const routerPrompt = agent.router ? promptOf(agent.router, ['router']) : undefined;
  if (issues.length > 0) throw new ConfigError(file, issues);

  const lines: Record<string, number> = {};
  const remember = (path: ConfigPath) => {
    const line = lineOf(path);
    if (line !== undefined) lines[formatConfigPath(path)] = line;
  };
  remember(['model']);
  remember(['context', 'summaryModel']);
  remember(['router', 'model']);
  for (const name of Object.keys(agent.handlers)) remember(['handlers', name, 'model']);

  return {
    name: agent.name,
    description: agent.description,
    prompt,
    model: agent.model,
    tools: agent.tools,
    limits: agent.limits,
    context: agent.context,
    approval: agent.approval,
    handlers,
    ...(agent.router ? { router: { model: agent.router.model, prompt: routerPrompt ?? '' } } : {}),
    source: { file, lines },
  };
}

/**
 * Validate `models.yaml` text; `file` names it in messages.
 *
 * @throws ConfigError `INVALID_CONFIG` naming the file, the field and the fix.
 */
export function parseModels(text: string, file: string): ModelsConfig {
  const { data, lineOf } = parseYamlSource(text, file, 'models: { <alias>: [ ... ] }');
  const parsed = modelsConfigSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) {
    throw new ConfigError(file, issuesFromZod(parsed.error, modelsConfigSchema, lineOf));
  }
  return { ...parsed.data, file };
}

/**
 * Read and validate `models.yaml`.
 *
 * @example
 * ```ts
 * const models = await loadModels('examples/models.yaml');
 * models.models.fast?.[0]?.provider; // 'anthropic'
 * ```
 */
export async function loadModels(path: string): Promise<ModelsConfig> {
  return parseModels(await readText(path, 'check the path given for models.yaml'), path);
}

/**
 * Read every agent in `dir`: each `*.yaml`/`*.yml` file is one agent, and each folder with an
 * `agent.yaml` (prompt files beside it) is one agent. Problems of all files are reported
 * together; two agents with one name are refused.
 *
 * @example
 * ```ts
 * const agents = await loadAgents('examples/agents');
 * agents.map((a) => a.name); // ['support']
 * ```
 */
export async function loadAgents(dir: string): Promise<AgentConfig[]> {
  let entries: string[];
  try {
    entries = (await readdir(dir)).sort();
  } catch (error) {
    throw new ConfigError(dir, [
      { path: '', message: `cannot read the folder (${errorCode(error)}) — check the agents path` },
    ]);
  }
  const files: string[] = [];
  for (const entry of entries) {
    const full = join(dir, entry);
    if (/\.ya?ml$/.test(entry)) files.push(full);
    else if ((await stat(full)).isDirectory()) {
      for (const name of ['agent.yaml', 'agent.yml']) {
        const candidate = join(full, name);
        if (
          await stat(candidate).then(
            (s) => s.isFile(),
            () => false,
          )
        ) {
          files.push(candidate);
          break;
        }
      }
    }
  }
  const agents: AgentConfig[] = [];
  const issues: ConfigIssue[] = [];
  for (const file of files) {
    try {
      agents.push(parseAgent(await readText(file, 'check the file'), file));
    } catch (error) {
      if (!ConfigError.isInstance(error)) throw error;
      issues.push(...error.issues);
    }
  }
  const byName = new Map<string, string>();
  for (const agent of agents) {
    const first = byName.get(agent.name);
    if (first !== undefined) {
      issues.push({
        file: agent.source.file,
        path: 'name',
        message: `"${agent.name}" is also the name of the agent in ${first} — give each agent its own name`,
      });
    } else byName.set(agent.name, agent.source.file);
  }
  if (issues.length > 0) throw new ConfigError(dir, issues);
  if (agents.length === 0) {
    throw new ConfigError(dir, [
      { path: '', message: 'holds no agent — add <name>.yaml or <name>/agent.yaml' },
    ]);
  }
  return agents;
}

/**
 * Every model alias the agents use (agent, handlers, router, summary model) must be a key of
 * `models.yaml`.
 *
 * @throws ConfigError `INVALID_CONFIG` naming each agent file, field and the known aliases.
 */
export function checkModelAliases(agents: readonly AgentConfig[], models: ModelsConfig): void {
  const known = Object.keys(models.models);
  const issues: ConfigIssue[] = [];
  for (const agent of agents) {
    const check = (alias: string | undefined, path: string) => {
      if (alias === undefined || alias in models.models) return;
      const line = agent.source.lines[path];
      issues.push({
        file: agent.source.file,
        path,
        message: `model alias "${alias}" is not in ${models.file} — use one of ${known.join(', ') || '(none)'}, or add it under models:`,
        ...(line === undefined ? {} : { line }),
      });
    };
    check(agent.model, 'model');
    check(agent.context.summaryModel, 'context.summaryModel');
    check(agent.router?.model, 'router.model');
    for (const [name, handler] of Object.entries(agent.handlers)) {
      check(handler.model, formatConfigPath(['handlers', name, 'model']));
    }
  }
  if (issues.length > 0) throw new ConfigError(models.file, issues);
}

/**
 * Load the agents folder and `models.yaml`, and check the agents' model aliases.
 *
 * @example
 * ```ts
 * const { agents, models } = await loadAgentConfig('examples/agents', 'examples/models.yaml');
 * ```
 */
export async function loadAgentConfig(
  agentsDir: string,
  modelsPath: string,
): Promise<{ agents: AgentConfig[]; models: ModelsConfig }> {
  const [agents, models] = await Promise.all([loadAgents(agentsDir), loadModels(modelsPath)]);
  checkModelAliases(agents, models);
  return { agents, models };
}

async function readText(path: string, fix: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [
      { path: '', message: `cannot read the file (${errorCode(error)}) — ${fix}` },
    ]);
  }
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? 'unreadable';
}
