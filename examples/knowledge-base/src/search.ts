import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Doc } from './corpus.js';

/** A ranked search result. */
export interface SearchHit {
  id: string;
  title: string;
  /** BM25 score, higher is better (rounded to 4 decimals). */
  score: number;
  /** Body text around the first term of the query it contains. */
  snippet: string;
}

/** Options of {@link SearchIndex.search}. */
export interface SearchOptions {
  /** Most hits to return (default 5). */
  limit?: number;
}

/** Options of {@link SearchIndex.build}. */
export interface BuildIndexOptions {
  /** Called after each document; awaited, so it can send a progress notification. */
  onProgress?: (done: number, total: number) => void | Promise<void>;
  /** Checked between documents: an abort rejects the build with `signal.reason`. */
  signal?: AbortSignal;
}

const STOP_WORDS = new Set(
  (
    'a an and are as at be but by can could do does for from had has have how i if in into is it ' +
    'its me my no not of on or our so than that the their them then there these they this to up ' +
    'us was we were what when where which who why will with would you your'
  ).split(' '),
);

const WORD = /[\p{L}\p{N}]+/gu;
const K1 = 1.2;
const B = 0.75;
/** Title terms count this many times, so a match in the title outranks one in passing. */
const TITLE_WEIGHT = 2;
const SNIPPET_LENGTH = 160;
const SNIPPET_LEAD = 40;

/** The index term for one word: lowercase with plurals folded; undefined for stop words. */
function term(word: string): string | undefined {
  const w = word.toLowerCase();
  if (w.length < 2 || STOP_WORDS.has(w)) return undefined;
  if (w.length > 4 && w.endsWith('ies')) return `${w.slice(0, -3)}y`;
  if (w.length > 3 && w.endsWith('s') && !/(ss|us|is)$/.test(w)) return w.slice(0, -1);
  return w;
}

/** Split text into index terms: lowercase words, stop words dropped, plurals folded. */
export function tokenize(text: string): string[] {
  const terms: string[] = [];
  for (const [word] of text.matchAll(WORD)) {
    const t = term(word);
    if (t) terms.push(t);
  }
  return terms;
}

/** An in-memory BM25 keyword index over help-center documents. */
export class SearchIndex {
  private readonly docs = new Map<string, Doc>();
  /** term → document id → term frequency */
  private readonly postings = new Map<string, Map<string, number>>();
  private readonly lengths = new Map<string, number>();
  private totalLength = 0;

  private constructor() {}

  /**
   * Index `docs` one at a time, reporting `onProgress(done, total)` after each and yielding to the
   * event loop in between, so a caller can stream progress and abort a long (re)index.
   * @throws the abort reason when `signal` aborts before the last document is indexed.
   */
  static async build(docs: readonly Doc[], options: BuildIndexOptions = {}): Promise<SearchIndex> {
    const { onProgress, signal } = options;
    const index = new SearchIndex();
    for (const [i, doc] of docs.entries()) {
      signal?.throwIfAborted();
      index.add(doc);
      await onProgress?.(i + 1, docs.length);
      await nextTurn();
    }
    signal?.throwIfAborted();
    return index;
  }

  /** Number of indexed documents. */
  get size(): number {
    return this.docs.size;
  }

  /** The document with this id, or undefined. */
  getDocument(id: string): Doc | undefined {
    return this.docs.get(id);
  }

  /** The best matches for a keyword query, best first; empty when no term matches. */
  search(query: string, options: SearchOptions = {}): SearchHit[] {
    const { limit = 5 } = options;
    const terms = new Set(tokenize(query));
    if (terms.size === 0 || limit < 1 || this.docs.size === 0) return [];

    const n = this.docs.size;
    const avgLength = this.totalLength / n || 1;
    const scores = new Map<string, number>();
    for (const t of terms) {
      const posting = this.postings.get(t);
      if (!posting) continue;
      const idf = Math.log(1 + (n - posting.size + 0.5) / (posting.size + 0.5));
      for (const [id, tf] of posting) {
        const norm = 1 - B + (B * (this.lengths.get(id) ?? 0)) / avgLength;
        scores.set(id, (scores.get(id) ?? 0) + (idf * tf * (K1 + 1)) / (tf + K1 * norm));
      }
    }

    return [...scores]
      .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
      .slice(0, limit)
      .map(([id, score]) => {
        const doc = this.docs.get(id)!;
        return {
          id,
          title: doc.title,
          score: Math.round(score * 10_000) / 10_000,
          snippet: snippet(doc.body, terms),
        };
      });
  }

  private add(doc: Doc): void {
    if (this.docs.has(doc.id)) throw new Error(`Duplicate document id ${doc.id}`);
    const terms = tokenize(doc.body);
    for (let i = 0; i < TITLE_WEIGHT; i++) terms.push(...tokenize(doc.title));
    this.docs.set(doc.id, doc);
    this.lengths.set(doc.id, terms.length);
    this.totalLength += terms.length;
    for (const t of terms) {
      const posting = this.postings.get(t) ?? new Map<string, number>();
      posting.set(doc.id, (posting.get(doc.id) ?? 0) + 1);
      this.postings.set(t, posting);
    }
  }
}

/**
 * About {@link SNIPPET_LENGTH} characters of `body` starting a little before the first word that
 * is one of `terms` (the start of the body when none is), cut at word boundaries, with markdown
 * markup and line breaks flattened.
 */
function snippet(body: string, terms: ReadonlySet<string>): string {
  let at = 0;
  for (const match of body.matchAll(WORD)) {
    const t = term(match[0]);
    if (t && terms.has(t)) {
      at = match.index;
      break;
    }
  }
  // Cut at whitespace so no word is split; the end always keeps the matched word.
  const start = at > SNIPPET_LEAD ? lastSpace(body, at - SNIPPET_LEAD) + 1 : 0;
  let end = Math.min(body.length, start + SNIPPET_LENGTH);
  if (end < body.length) end = Math.max(lastSpace(body, end), at + 1);
  const text = body
    .slice(start, end)
    .replace(/[*`#|]+|-{3,}/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return `${start > 0 ? '…' : ''}${text}${end < body.length ? '…' : ''}`;
}

/** Index of the last whitespace character at or before `from`, or -1. */
function lastSpace(text: string, from: number): number {
  for (let i = from; i >= 0; i--) if (/\s/.test(text[i]!)) return i;
  return -1;
}
