/** `@keel/tool-sdk/conformance`: the reference tools of the official MCP conformance suite. */
export { conformanceTools } from './fixtures.js';
