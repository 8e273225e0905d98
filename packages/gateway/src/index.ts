/**
 * @keel/gateway — not built yet (issue 3). It will import the shared contract from
 * `@keel/tool-sdk/contract` rather than re-declare it.
 */
export type { KeelError, KeelErrorCode } from '@keel/tool-sdk/contract';
