/** `@keel/tool-sdk/test`: unit-test tools in a few lines. */
export { createTestSigner } from './test-signer.js';
export type { TestSigner, TestTokenClaims } from './test-signer.js';
export { createTestClient, readReply } from './test-client.js';
export type { TestClientOptions, TestCallResult, TestReply, FetchTarget } from './test-client.js';
export { freePort, startRedisServer } from './local-services.js';
