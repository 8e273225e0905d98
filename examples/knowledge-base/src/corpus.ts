import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** One help-center document. */
export interface Doc {
  /** File name without `.md`, e.g. `refund-policy`. */
  id: string;
  title: string;
  /** Markdown after the title line. */
  body: string;
}

/**
 * Split a markdown document into title and body. The title is the `# Title` first line; a
 * document without one is titled by its id and its whole text is the body.
 */
export function parseDocument(id: string, markdown: string): Doc {
  const text = markdown.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  const newline = text.indexOf('\n');
  const first = newline === -1 ? text : text.slice(0, newline);
  const heading = /^#\s+(.+?)\s*#*\s*$/.exec(first);
  if (!heading) return { id, title: id, body: text.trim() };
  return { id, title: heading[1]!, body: newline === -1 ? '' : text.slice(newline + 1).trim() };
}

/** Load every `.md` file of a folder (not its subfolders), sorted by id. */
export async function loadCorpus(dir: string): Promise<Doc[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = entries
    .filter((e) => e.isFile() && e.name.endsWith('.md'))
    .map((e) => e.name)
    .sort();
  return Promise.all(
    files.map(async (file) =>
      parseDocument(file.slice(0, -'.md'.length), await readFile(join(dir, file), 'utf8')),
    ),
  );
}
