// Serves the conformance fixture tools over HTTP. Auth is off (the suite sends no auth headers)
// unless KEEL_JWKS_URL and KEEL_ISSUER are set (the fixture server behind the gateway).
// Usage: tsx serve-fixtures.ts <port>; prints the URL when listening.
import { pino } from 'pino';
import { createToolServer } from '../http/tool-server.js';
import { conformanceTools } from './fixtures.js';

const server = createToolServer({
  id: 'conformance',
  name: 'keel-conformance-fixtures',
  version: '0.1.0',
  tools: conformanceTools(),
  ...(process.env.KEEL_JWKS_URL ? {} : { auth: 'none' as const }),
  logger: pino({ level: 'silent' }),
});
const { url } = await server.listen(Number(process.argv[2] ?? 0));
process.stdout.write(`${url}\n`);
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
