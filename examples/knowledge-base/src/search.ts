import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One help-center document. */
export interface Doc {
  id: string;
  title: string;
  body: string;
}

/** A ranked search hit. */
export interface Hit {
  id: string;
  title: string;
  score: number;
  snippet: string;
}

const STOP = new Set([
  'the',
  'a',
  'an',
  'and',
  'or',
  'to',
  'of',
  'in',
  'is',
  'are',
  'it',
  'on',
  'for',
  'by',
  'be',
  'can',
  'with',
  'how',
  'what',
  'do',
  'i',
  'my',
]);
// A crude stemmer (refunds, refunded → refund) is enough for a help center of this size.
const stem = (t: string) =>
  t.length > 4 && t.endsWith('ed')
    ? t.slice(0, -2)
    : t.length > 3 && t.endsWith('s') && !t.endsWith('ss')
      ? t.slice(0, -1)
      : t;
const tokenize = (text: string) =>
  text
    .toLowerCase()
    .match(/[a-z0-9]+/g)
    ?.filter((t) => !STOP.has(t))
    .map(stem) ?? [];

/** Load the markdown documents of a folder (`# Title` on the first line). */
export function loadDocs(dir: string): Doc[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((file) => {
      const text = readFileSync(join(dir, file), 'utf8');
      const [first, ...rest] = text.split('\n');
      return {
        id: file.replace(/\.md$/, ''),
        title: (first ?? '').replace(/^#\s*/, ''),
        body: rest.join('\n').trim(),
      };
    });
}

/** A BM25 index over documents. */
export class SearchIndex {
  private postings = new Map<string, Map<string, number>>();
  private lengths = new Map<string, number>();
  private docs = new Map<string, Doc>();

  /** Build the index; reports progress per document and stops when `signal` aborts. */
  static async build(
    docs: Doc[],
    onProgress: (done: number, total: number) => Promise<void> | void = () => {},
    signal?: AbortSignal,
  ): Promise<SearchIndex> {
    const index = new SearchIndex();
    for (const [i, doc] of docs.entries()) {
      signal?.throwIfAborted();
      index.add(doc);
      await onProgress(i + 1, docs.length);
    }
    return index;
  }

  private add(doc: Doc): void {
    this.docs.set(doc.id, doc);
    const tokens = tokenize(`${doc.title} ${doc.title} ${doc.body}`);
    this.lengths.set(doc.id, tokens.length);
    for (const token of tokens) {
      const posting = this.postings.get(token) ?? new Map<string, number>();
      posting.set(doc.id, (posting.get(doc.id) ?? 0) + 1);
      this.postings.set(token, posting);
    }
  }

  get size(): number {
    return this.docs.size;
  }

  get(id: string): Doc | undefined {
    return this.docs.get(id);
  }

  search(query: string, limit = 3): Hit[] {
    const n = this.docs.size;
    const avg = [...this.lengths.values()].reduce((a, b) => a + b, 0) / Math.max(1, n);
    const scores = new Map<string, number>();
    const terms = tokenize(query);
    for (const term of terms) {
      const posting = this.postings.get(term);
      if (!posting) continue;
      const idf = Math.log(1 + (n - posting.size + 0.5) / (posting.size + 0.5));
      for (const [id, tf] of posting) {
        const len = this.lengths.get(id) ?? avg;
        const s = idf * ((tf * 2.2) / (tf + 1.2 * (0.25 + (0.75 * len) / avg)));
        scores.set(id, (scores.get(id) ?? 0) + s);
      }
    }
    return [...scores.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([id, score]) => {
        const doc = this.docs.get(id)!;
        const lower = doc.body.toLowerCase();
        const at = Math.max(
          0,
          Math.min(...terms.map((t) => lower.indexOf(t)).filter((i) => i >= 0)) - 40,
        );
        return {
          id,
          title: doc.title,
          score: Math.round(score * 1000) / 1000,
          snippet: doc.body.slice(at, at + 160).replace(/\s+/g, ' '),
        };
      });
  }
}
