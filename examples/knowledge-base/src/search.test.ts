import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadCorpus } from './corpus.js';
import type { Doc } from './corpus.js';
import { SearchIndex, tokenize } from './search.js';

const docs = await loadCorpus(fileURLToPath(new URL('../docs', import.meta.url)));
const index = await SearchIndex.build(docs);

describe('tokenize', () => {
  it('lowercases, drops stop words and folds plurals', () => {
    expect(tokenize('How long do Refunds take? The deliveries, the address!')).toEqual([
      'long',
      'refund',
      'take',
      'delivery',
      'address',
    ]);
    expect(tokenize('HTTP 429, 2-factor')).toEqual(['http', '429', 'factor']);
  });
});

describe('SearchIndex.search', () => {
  it.each([
    ['how long does a refund take', 'refund-policy'],
    ['refund to my payment method', 'refund-policy'],
    ['HTTP 429 too many requests', 'api-rate-limits'],
    ['turn on two-factor authentication', 'account-security'],
    ['customs duties import VAT', 'international-shipping'],
    ['cancel my order before it ships', 'cancel-an-order'],
    ['where is my parcel tracking link', 'order-tracking'],
    ['API key scopes', 'api-authentication'],
    ['delete my account data', 'privacy-and-data'],
    ['express delivery estimates', 'shipping-times'],
  ])('ranks the relevant article first for %j', (query, expected) => {
    expect(index.search(query)[0]?.id).toBe(expected);
  });

  it('returns hits best first, with titles, up to the limit', () => {
    const hits = index.search('refund shipping order', { limit: 3 });
    expect(hits).toHaveLength(3);
    for (const hit of hits) expect(hit.title).toBe(index.getDocument(hit.id)?.title);
    const scores = hits.map((h) => h.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(scores.every((s) => s > 0)).toBe(true);
    expect(index.search('refund')).toHaveLength(5); // default limit
  });

  it('returns nothing for unknown words, stop words only, or a limit below 1', () => {
    expect(index.search('xylophone quasar')).toEqual([]);
    expect(index.search('how do I')).toEqual([]);
    expect(index.search('refund', { limit: 0 })).toEqual([]);
  });

  it('ranks a title match above a passing mention', async () => {
    const small = await SearchIndex.build([
      {
        id: 'mention',
        title: 'General',
        body: 'Some words about gardens and also warranty terms.',
      },
      { id: 'titled', title: 'Warranty', body: 'Some words about gardens and other topics here.' },
    ]);
    expect(small.search('warranty').map((h) => h.id)).toEqual(['titled', 'mention']);
  });
});

describe('snippets', () => {
  const filler = (n: number) => Array.from({ length: n }, (_, i) => `word${i}`).join(' ');
  const doc: Doc = {
    id: 'd',
    title: 'Zebra crossings',
    body: `${filler(40)} the **zebra** crossed the\nroad safely. ${filler(60)}`,
  };

  it('shows the text around the first matching term, cut at word boundaries', async () => {
    const small = await SearchIndex.build([doc]);
    const [hit] = small.search('road zebras');
    expect(hit?.snippet).toMatch(
      /^…word\d+ .* the zebra crossed the road safely\. word0 .*word\d+…$/,
    );
    expect(hit!.snippet.length).toBeLessThanOrEqual(165);
    expect(hit!.snippet).not.toContain('**');
  });

  it('starts at the beginning when the match is early or only in the title', async () => {
    const small = await SearchIndex.build([doc]);
    expect(small.search('word1')[0]?.snippet).toMatch(/^word0 word1 /);
    expect(small.search('crossings')[0]?.snippet).toMatch(/^word0 /);
  });

  it('snippets the real refund article on the refund times', () => {
    const [hit] = index.search('refund takes');
    expect(hit?.snippet.toLowerCase()).toContain('refund');
  });
});

describe('SearchIndex.getDocument', () => {
  it('returns a document by id, or undefined', () => {
    expect(index.getDocument('returns')).toEqual(docs.find((d) => d.id === 'returns'));
    expect(index.getDocument('nope')).toBeUndefined();
    expect(index.size).toBe(docs.length);
  });
});

describe('SearchIndex.build', () => {
  it('reports progress after each document', async () => {
    const calls: [number, number][] = [];
    const built = await SearchIndex.build(docs, { onProgress: (d, t) => void calls.push([d, t]) });
    expect(calls).toEqual(docs.map((_, i) => [i + 1, docs.length]));
    expect(built.size).toBe(docs.length);
  });

  it('waits for an async progress callback before the next document', async () => {
    const events: string[] = [];
    await SearchIndex.build(docs.slice(0, 3), {
      onProgress: async (done) => {
        events.push(`start ${done}`);
        await Promise.resolve();
        events.push(`end ${done}`);
      },
    });
    expect(events).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
  });

  it('does not start when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    let calls = 0;
    await expect(
      SearchIndex.build(docs, { signal: controller.signal, onProgress: () => void calls++ }),
    ).rejects.toThrow('stop');
    expect(calls).toBe(0);
  });

  it('stops between documents when aborted during progress', async () => {
    const controller = new AbortController();
    const calls: number[] = [];
    const build = SearchIndex.build(docs, {
      signal: controller.signal,
      onProgress: (done) => {
        calls.push(done);
        if (done === 3) controller.abort();
      },
    });
    await expect(build).rejects.toMatchObject({ name: 'AbortError' });
    expect(calls).toEqual([1, 2, 3]);
  });

  it('yields between documents so an outside abort lands', async () => {
    const controller = new AbortController();
    let calls = 0;
    const build = SearchIndex.build(docs, {
      signal: controller.signal,
      onProgress: () => void calls++,
    });
    controller.abort(); // runs before the build resumes from its first yield
    await expect(build).rejects.toMatchObject({ name: 'AbortError' });
    expect(calls).toBe(1);
  });

  it('rejects an aborted build even after the last document', async () => {
    const controller = new AbortController();
    const build = SearchIndex.build(docs.slice(0, 1), {
      signal: controller.signal,
      onProgress: () => controller.abort(),
    });
    await expect(build).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('rejects duplicate ids and accepts an empty corpus', async () => {
    const one: Doc = { id: 'a', title: 'A', body: 'alpha' };
    await expect(SearchIndex.build([one, one])).rejects.toThrow('Duplicate document id a');
    const empty = await SearchIndex.build([]);
    expect(empty.size).toBe(0);
    expect(empty.search('alpha')).toEqual([]);
  });
});
