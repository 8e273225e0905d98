// Serves the conformance fixture tools over HTTP with auth off (the suite sends no auth headers).
// Usage: tsx serve-fixtures.ts <port>; prints the URL when listening.
import { pino } from 'pino';
import { createToolServer } from '../http/tool-server.js';
import { conformanceTools } from './fixtures.js';

const server = createToolServer({
  id: 'conformance',
  name: 'keel-conformance-fixtures',
  version: '0.1.0',
  tools: conformanceTools(),
  auth: 'none',
  logger: pino({ level: 'silent' }),
});
const { url } = await server.listen(Number(process.argv[2] ?? 0));
process.stdout.write(`${url}\n`);
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
