/**
 * @keel/orchestrator — not built yet (issue 4). It will import the shared contract from
 * `@keel/tool-sdk/contract` rather than re-declare it.
 */
export type { KeelError, KeelErrorCode } from '@keel/tool-sdk/contract';
