/**
 * An agent file (DESIGN.md section 8): its system prompt, model alias, tool globs, limits,
 * context strategy, the tools that need a human's approval, and optional handlers (steps
 * that override the model, prompt and tools) with a router that picks one.
 */
import { z } from 'zod';
import { ConfigError } from './config-error.js';
import { modelAliasSchema } from './models-config.js';

/** Characters of a tool glob: exposed names (`orders__get_order`) plus `*` and `?`. */
export const TOOL_GLOB_PATTERN = /^[a-z0-9_*?-]{1,61}$/;

/** A glob over exposed tool names, e.g. `orders__*`. */
export const toolGlobSchema = z
  .string()
  .regex(
    TOOL_GLOB_PATTERN,
    'is not a valid tool glob — use lowercase letters, digits, "_", "-" and the wildcards * and ? (e.g. orders__*)',
  );

/** An agent or handler name. */
export const AGENT_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,39}$/;

const nameSchema = z
  .string()
  .regex(
    AGENT_NAME_PATTERN,
    'is not a valid name — use lowercase letters, digits, "-" or "_", starting with a letter',
  );

const promptFields = {
  /** The prompt text, with `{{VARIABLES}}` filled from session input. */
  prompt: z.string().min(1).optional(),
  /** A file holding the prompt, relative to the agent file. */
  promptFile: z.string().min(1).optional(),
};

/** Per-turn limits. */
export const agentLimitsSchema = z.strictObject({
  maxSteps: z.int().min(1).default(10),
  maxToolCalls: z.int().min(0).default(20),
  maxTokensPerTurn: z.int().min(1).default(4096),
  budgetUsd: z.number().positive().optional(),
});

/** What the model sees of the history: a recent window, or a running summary. */
export const agentContextSchema = z.strictObject({
  strategy: z.enum(['window', 'summary']).default('window'),
  /** The model alias that writes the summary; the agent's model when absent. */
  summaryModel: modelAliasSchema.optional(),
});

/** A step that overrides the agent's model, prompt or tools. */
export const agentHandlerSchema = z.strictObject({
  description: z.string().default(''),
  model: modelAliasSchema.optional(),
  ...promptFields,
  tools: z.array(toolGlobSchema).optional(),
});

/** Picks a handler for each message (a cheap model, usually). */
export const agentRouterSchema = z.strictObject({
  model: modelAliasSchema,
  ...promptFields,
});

/** An agent file as written, with defaults filled. */
export const agentFileSchema = z
  .strictObject({
    name: nameSchema,
    description: z.string().default(''),
    ...promptFields,
    model: modelAliasSchema,
    tools: z.array(toolGlobSchema).default([]),
    limits: agentLimitsSchema.prefault({}),
    context: agentContextSchema.prefault({}),
    approval: z.array(toolGlobSchema).default([]),
    handlers: z.record(nameSchema, agentHandlerSchema).default({}),
    router: agentRouterSchema.optional(),
  })
  .superRefine((agent, ctx) => {
    if (agent.prompt === undefined && agent.promptFile === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['prompt'],
        message:
          'is missing — add prompt: (the text) or promptFile: (a file next to the agent file)',
      });
    }
    const both = (owner: { prompt?: string; promptFile?: string }, path: Array<string>) => {
      if (owner.prompt !== undefined && owner.promptFile !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'promptFile'],
          message: 'is set together with prompt — keep only one of prompt and promptFile',
        });
      }
    };
    both(agent, []);
    for (const [name, handler] of Object.entries(agent.handlers)) both(handler, ['handlers', name]);
    if (agent.router) {
      both(agent.router, ['router']);
      if (agent.router.prompt === undefined && agent.router.promptFile === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['router', 'prompt'],
          message: 'is missing — say how to choose between the handlers (prompt: or promptFile:)',
        });
      }
      if (Object.keys(agent.handlers).length < 2) {
        ctx.addIssue({
          code: 'custom',
          path: ['router'],
          message: 'has fewer than two handlers to choose from — add handlers, or remove router',
        });
      }
    }
  });

export type AgentFile = z.output<typeof agentFileSchema>;
export type AgentLimits = z.output<typeof agentLimitsSchema>;
export type AgentContext = z.output<typeof agentContextSchema>;

/** A handler with its prompt text read (still a template). */
export interface AgentHandler {
  description: string;
  model?: string;
  prompt?: string;
  tools?: string[];
}

/** A loaded agent: prompt files read, so `prompt` always holds the template text. */
export interface AgentConfig {
  name: string;
  description: string;
  /** The system prompt template (`{{VARIABLES}}` not yet filled; see {@link renderPrompt}). */
  prompt: string;
  model: string;
  tools: string[];
  limits: AgentLimits;
  context: AgentContext;
  approval: string[];
  handlers: Record<string, AgentHandler>;
  router?: { model: string; prompt: string };
  /** The agent file, and the lines of its fields (`handlers.refund.model` → 12). */
  source: { file: string; lines: Record<string, number> };
}

const VARIABLE = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** The `{{VARIABLES}}` a template uses, each once, in order. */
export function templateVariables(template: string): string[] {
  return [...new Set([...template.matchAll(VARIABLE)].map((m) => m[1]!))];
}

/**
 * Fill `{{NAME}}` placeholders from `vars`.
 *
 * @throws ConfigError `INVALID_CONFIG` naming every variable without a value.
 *
 * @example
 * ```ts
 * renderPrompt('Hello {{CUSTOMER_NAME}}', { CUSTOMER_NAME: 'Ada' }); // 'Hello Ada'
 * ```
 */
export function renderPrompt(
  template: string,
  vars: Readonly<Record<string, string | number | boolean | undefined>>,
  where: { file?: string; field?: string } = {},
): string {
  const missing = templateVariables(template).filter((name) => vars[name] === undefined);
  if (missing.length > 0) {
    throw new ConfigError(
      where.file ?? 'prompt',
      missing.map((name) => ({
        path: where.field ?? 'prompt',
        message: `template variable {{${name}}} has no value — pass ${name} in the session input variables, or remove it from the prompt`,
      })),
    );
  }
  return template.replace(VARIABLE, (_, name: string) => String(vars[name]));
}

/** A tool glob as a regular expression over whole exposed names. */
export function toolGlobToRegExp(glob: string): RegExp {
  const body = glob
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[-]/g, '\\-')))
    .join('');
  return new RegExp(`^${body}$`);
}

/**
 * Whether an exposed tool name matches any of the globs.
 *
 * @example
 * ```ts
 * matchesToolGlobs('orders__refund', ['orders__*']); // true
 * ```
 */
export function matchesToolGlobs(name: string, globs: readonly string[]): boolean {
  return globs.some((glob) => toolGlobToRegExp(glob).test(name));
}
