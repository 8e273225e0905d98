/**
 * `@keel/tool-sdk/contract`: the shapes that bind Keel's packages. No dependencies.
 */
export {
  KEEL_ERROR_CODES,
  DEFAULT_RETRYABLE,
  ERROR_CODE_PATTERN,
  ERROR_META_KEY,
  isKeelError,
  isBuiltInErrorCode,
} from './error-codes.js';
export type { KeelError, KeelErrorCode, BuiltInErrorCode } from './error-codes.js';
export {
  CALL_TOKEN_TYPE,
  CALL_TOKEN_ALGORITHMS,
  CALL_TOKEN_MAX_LIFETIME_S,
  CALL_TOKEN_CLOCK_SKEW_S,
  JWKS_PATH,
} from './call-token.js';
export type { CallTokenClaims, CallTokenAlgorithm } from './call-token.js';
export {
  SERVER_ID_PATTERN,
  TOOL_NAME_PATTERN,
  NAMESPACE_SEPARATOR,
  EXPOSED_NAME_MAX_LENGTH,
  exposedToolName,
  splitExposedToolName,
} from './tool-names.js';
export { META_KEYS } from './meta-keys.js';
