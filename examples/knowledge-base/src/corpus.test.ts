import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadCorpus, parseDocument } from './corpus.js';

const DOCS_DIR = fileURLToPath(new URL('../docs', import.meta.url));

describe('parseDocument', () => {
  it('takes the title from the first heading and the rest as body', () => {
    expect(parseDocument('x', '# Refund policy\n\nRefunds take 5 days.\n')).toEqual({
      id: 'x',
      title: 'Refund policy',
      body: 'Refunds take 5 days.',
    });
  });

  it('handles a byte-order mark, CRLF and closing hashes', () => {
    expect(parseDocument('x', '\uFEFF# Returns ##\r\nLine one\r\nLine two')).toEqual({
      id: 'x',
      title: 'Returns',
      body: 'Line one\nLine two',
    });
  });

  it('falls back to the id when there is no title line', () => {
    expect(parseDocument('notes', 'Just text.\n## Not a title')).toEqual({
      id: 'notes',
      title: 'notes',
      body: 'Just text.\n## Not a title',
    });
    expect(parseDocument('t', '# Only a title')).toEqual({
      id: 't',
      title: 'Only a title',
      body: '',
    });
  });
});

describe('loadCorpus', () => {
  it('loads the help-center documents sorted by id', async () => {
    const docs = await loadCorpus(DOCS_DIR);
    expect(docs.length).toBeGreaterThanOrEqual(10);
    const ids = docs.map((d) => d.id);
    expect(ids).toEqual([...ids].sort());
    expect(docs.find((d) => d.id === 'refund-policy')?.title).toBe('Refund policy');
    for (const doc of docs) {
      expect(doc.title).not.toBe(doc.id);
      expect(doc.body.startsWith('#')).toBe(false);
      const words = doc.body.split(/\s+/).length;
      expect(words, doc.id).toBeGreaterThanOrEqual(150);
      expect(words, doc.id).toBeLessThanOrEqual(400);
    }
  });

  it('reads only the markdown files directly in the folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keel-kb-'));
    try {
      await writeFile(join(dir, 'b.md'), '# B\nbee');
      await writeFile(join(dir, 'a.md'), '# A\nay');
      await writeFile(join(dir, 'notes.txt'), 'ignored');
      await mkdir(join(dir, 'drafts.md'));
      expect(await loadCorpus(dir)).toEqual([
        { id: 'a', title: 'A', body: 'ay' },
        { id: 'b', title: 'B', body: 'bee' },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
