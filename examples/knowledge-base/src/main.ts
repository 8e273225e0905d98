// The knowledge-base tool server: `pnpm start` (PORT, REDIS_URL, KEEL_* from the environment).
import { fileURLToPath } from 'node:url';
import { createToolServer } from '@keel/tool-sdk';
import { loadCorpus } from './corpus.js';
import { knowledgeBaseTools } from './tools.js';

const docs = await loadCorpus(fileURLToPath(new URL('../docs', import.meta.url)));
const server = createToolServer({
  id: 'kb',
  name: 'Knowledge base',
  version: '0.1.0',
  tools: await knowledgeBaseTools(docs),
});
const { url } = await server.listen(
  Number(process.env.PORT ?? 7102),
  process.env.HOST ?? '127.0.0.1',
);
process.stdout.write(`knowledge-base tool server at ${url}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => void server.close().then(() => process.exit(0)));
}
