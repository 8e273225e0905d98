import { z } from 'zod';
import { defineTool } from '@keel/tool-sdk';
import { SearchIndex } from './search.js';
import type { Doc } from './corpus.js';

/** Read-only knowledge-base tools over a document set. */
export async function knowledgeBaseTools(docs: Doc[]) {
  let index = await SearchIndex.build(docs);

  const searchArticles = defineTool({
    name: 'search_articles',
    title: 'Search the help center',
    description:
      'Keyword search over the help-center articles; returns the best matches with a snippet.',
    input: z.object({
      query: z.string().min(2).max(200),
      limit: z.number().int().min(1).max(10).default(3),
    }),
    output: z.object({
      hits: z.array(
        z.object({ id: z.string(), title: z.string(), score: z.number(), snippet: z.string() }),
      ),
    }),
    annotations: { readOnly: true },
    handler: ({ query, limit }) => ({ hits: index.search(query, { limit }) }),
  });

  const getArticle = defineTool({
    name: 'get_article',
    title: 'Read an article',
    description: 'Read one help-center article by id.',
    input: z.object({ id: z.string() }),
    output: z.object({ id: z.string(), title: z.string(), body: z.string() }),
    errors: { ARTICLE_NOT_FOUND: { retryable: false, description: 'No article has this id' } },
    annotations: { readOnly: true },
    handler: ({ id }, ctx) =>
      index.getDocument(id) ?? ctx.fail('ARTICLE_NOT_FOUND', `No article ${id}`),
  });

  const reindex = defineTool({
    name: 'reindex',
    title: 'Rebuild the search index',
    description: 'Rebuild the search index, reporting progress per document.',
    input: z.object({}),
    output: z.object({ documents: z.number().int() }),
    annotations: { readOnly: true, idempotent: true },
    handler: async (_input, ctx) => {
      index = await SearchIndex.build(docs, {
        onProgress: (done, total) => ctx.progress(done, total, `indexed ${done} of ${total}`),
        signal: ctx.signal,
      });
      return { documents: index.size };
    },
  });

  return [searchArticles, getArticle, reindex];
}
