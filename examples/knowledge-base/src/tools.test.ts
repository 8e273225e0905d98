import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createToolServer } from '@keel/tool-sdk';
import { createTestClient } from '@keel/tool-sdk/test';
import { loadCorpus } from './corpus.js';
import { knowledgeBaseTools } from './tools.js';

const docs = await loadCorpus(fileURLToPath(new URL('../docs', import.meta.url)));

async function setup() {
  const server = createToolServer({
    id: 'kb',
    tools: await knowledgeBaseTools(docs),
    auth: 'none',
    logger: pino({ level: 'silent' }),
  });
  return createTestClient(server);
}

describe('knowledge-base example', () => {
  it('ranks the relevant article first', async () => {
    const client = await setup();
    const r = await client.callTool('search_articles', {
      query: 'partial refund to the original payment method',
    });
    const hits = (r.structuredContent as { hits: { id: string; snippet: string }[] }).hits;
    expect(hits[0]!.id).toBe('refund-policy');
    expect(hits[0]!.snippet.toLowerCase()).toContain('refund');
  });

  it('reads an article, with a declared error for unknown ids', async () => {
    const client = await setup();
    expect(
      (await client.callTool('get_article', { id: 'returns' })).structuredContent,
    ).toMatchObject({ title: 'Returns' });
    expect((await client.callTool('get_article', { id: 'nope' })).error?.code).toBe(
      'ARTICLE_NOT_FOUND',
    );
  });

  it('reports progress per document while reindexing', async () => {
    const client = await setup();
    const r = await client.callTool('reindex', {}, { progressToken: 'ix' });
    const progress = r.notifications.filter((n) => n.method === 'notifications/progress');
    expect(progress).toHaveLength(docs.length);
    expect(progress.at(-1)!.params).toMatchObject({ progress: docs.length, total: docs.length });
    expect(r.structuredContent).toEqual({ documents: docs.length });
  });
});
