/**
 * The one error a bad agent or models file raises: code `INVALID_CONFIG`, never retryable,
 * its message one line per problem (`file:line: field: problem — fix`), no stack trace text.
 */
import type { ConfigIssue } from './config-issues.js';
import { formatConfigIssues } from './config-issues.js';

const MARKER = Symbol.for('keel.orchestrator.ConfigError');

/** A config file (agent, prompt, models.yaml) that cannot be used as written. */
export class ConfigError extends Error {
  readonly code = 'INVALID_CONFIG' as const;
  readonly retryable = false;
  /** Every problem found, each naming its file. */
  readonly issues: readonly ConfigIssue[];
  readonly [MARKER] = true;

  constructor(file: string, issues: readonly ConfigIssue[]) {
    super(formatConfigIssues(file, issues));
    this.name = 'ConfigError';
    this.issues = issues.map((issue) => ({ ...issue, file: issue.file ?? file }));
  }

  /** True for a ConfigError from any copy of this package. */
  static isInstance(value: unknown): value is ConfigError {
    return typeof value === 'object' && value !== null && MARKER in value;
  }
}
