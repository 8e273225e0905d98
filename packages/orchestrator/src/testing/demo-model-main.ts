/**
 * The demo model as a process: `node --import tsx demo-model-main.ts` serves
 * {@link demoModelScript} on 127.0.0.1:`PORT` (default 7190) for both the Anthropic
 * (`<url>/v1/messages`) and the OpenAI (`<url>/v1/chat/completions`) SDK.
 */
import { demoModelScript } from './demo-model.js';
import { createLocalModelServer } from './local-model-server.js';

const portRaw = process.env.PORT?.trim() || '7190';
const port = Number(portRaw);
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  process.stderr.write(`PORT="${portRaw}" is not a port — use a number from 0 to 65535\n`);
  process.exit(2);
}
const server = await createLocalModelServer({ script: demoModelScript, port });
process.stdout.write(`demo model at ${server.url}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => void server.close().then(() => process.exit(0)));
}
