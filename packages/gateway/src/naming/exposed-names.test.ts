import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { splitExposedToolName } from '@keel/tool-sdk/contract';
import { buildExposedNames } from './exposed-names.js';
import type { ToolRef } from './exposed-names.js';

const hex6 = (original: string) => createHash('sha256').update(original).digest('hex').slice(0, 6);
const LEGAL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

function names(entries: ToolRef[], mode: 'always' | 'auto' | 'never' = 'always', servers = 2) {
  return buildExposedNames(entries, mode, servers);
}

describe('buildExposedNames', () => {
  it('prefixes <serverId>__<tool> and splits back on the first "__"', () => {
    const map = names([
      { serverId: 'orders', tool: 'refund_order' },
      { serverId: 'everything', tool: 'get-sum' },
      { serverId: 'kb', tool: '__weird__' },
    ]);
    expect([...map.keys()]).toEqual([
      'everything__get-sum',
      'kb____weird__',
      'orders__refund_order',
    ]);
    expect(map.get('orders__refund_order')).toEqual({ serverId: 'orders', tool: 'refund_order' });
    expect(splitExposedToolName('kb____weird__')).toEqual({ serverId: 'kb', tool: '__weird__' });
    expect(map.exposedNameOf('everything', 'get-sum')).toBe('everything__get-sum');
    expect(map.exposedNameOf('everything', 'nope')).toBeUndefined();
  });

  it('replaces each character outside [A-Za-z0-9_-] with "_", unicode per code point', () => {
    const map = names([
      { serverId: 'plain', tool: 'Echo Tool!' },
      { serverId: 'plain', tool: 'größe.berechnen' },
      { serverId: 'plain', tool: 'emoji😀x' },
    ]);
    expect(map.exposedNameOf('plain', 'Echo Tool!')).toBe('plain__Echo_Tool_');
    expect(map.exposedNameOf('plain', 'größe.berechnen')).toBe('plain__gr__e_berechnen');
    // One astral code point is one character, so one "_".
    expect(map.exposedNameOf('plain', 'emoji😀x')).toBe('plain__emoji_x');
  });

  it('cuts names over 64 characters and suffixes _<6 hex of sha256(original)>', () => {
    const long = 'a'.repeat(70);
    const map = names([
      { serverId: 'orders', tool: long },
      { serverId: 'orders', tool: 'b'.repeat(56) }, // 8 + 56 = 64: fits exactly
    ]);
    const exposed = map.exposedNameOf('orders', long)!;
    expect(exposed).toBe(`orders__${'a'.repeat(64 - 8 - 7)}_${hex6(`orders__${long}`)}`);
    expect(exposed).toHaveLength(64);
    expect(map.exposedNameOf('orders', 'b'.repeat(56))).toBe(`orders__${'b'.repeat(56)}`);
  });

  it('a long unicode name is sanitised, cut and hashed from the original', () => {
    const tool = 'ü'.repeat(80);
    const map = names([{ serverId: 'x', tool }]);
    const exposed = map.exposedNameOf('x', tool)!;
    expect(exposed).toMatch(LEGAL_NAME);
    expect(exposed).toHaveLength(64);
    expect(exposed.endsWith(`_${hex6(`x__${tool}`)}`)).toBe(true);
  });

  it('a sanitised name colliding with a legal one is suffixed; the legal one keeps its name', () => {
    const map = names([
      { serverId: 'p', tool: 'get_sum' },
      { serverId: 'p', tool: 'get.sum' },
    ]);
    expect(map.exposedNameOf('p', 'get_sum')).toBe('p__get_sum');
    expect(map.exposedNameOf('p', 'get.sum')).toBe(`p__get_sum_${hex6('p__get.sum')}`);
  });

  it('two sanitised names colliding are both suffixed, each with its own hash', () => {
    const map = names([
      { serverId: 'p', tool: 'a.b' },
      { serverId: 'p', tool: 'a b' },
    ]);
    expect(map.exposedNameOf('p', 'a.b')).toBe(`p__a_b_${hex6('p__a.b')}`);
    expect(map.exposedNameOf('p', 'a b')).toBe(`p__a_b_${hex6('p__a b')}`);
  });

  it('"never": the same tool on two servers is disambiguated by the hash suffix', () => {
    const map = names(
      [
        { serverId: 'kb', tool: 'search' },
        { serverId: 'web', tool: 'search' },
        { serverId: 'kb', tool: 'fetch_doc' },
      ],
      'never',
    );
    expect(map.exposedNameOf('kb', 'fetch_doc')).toBe('fetch_doc');
    expect(map.exposedNameOf('kb', 'search')).toBe(`search_${hex6('kb__search')}`);
    expect(map.exposedNameOf('web', 'search')).toBe(`search_${hex6('web__search')}`);
    expect(map.size).toBe(3);
  });

  it('"never": a long name is cut to 64 without a prefix', () => {
    const tool = 'x'.repeat(65);
    const exposed = names([{ serverId: 'a', tool }], 'never').exposedNameOf('a', tool)!;
    expect(exposed).toBe(`${'x'.repeat(57)}_${hex6(`a__${tool}`)}`);
  });

  it('"auto": no prefix with one server, prefixed with two', () => {
    const one = names([{ serverId: 'everything', tool: 'echo' }], 'auto', 1);
    expect([...one.keys()]).toEqual(['echo']);
    expect(one.get('echo')).toEqual({ serverId: 'everything', tool: 'echo' });
    const two = names(
      [
        { serverId: 'everything', tool: 'echo' },
        { serverId: 'orders', tool: 'echo' },
      ],
      'auto',
      2,
    );
    expect([...two.keys()]).toEqual(['everything__echo', 'orders__echo']);
  });

  it('"always" prefixes even a single server', () => {
    expect([...names([{ serverId: 'a', tool: 'echo' }], 'always', 1).keys()]).toEqual(['a__echo']);
  });

  it('is deterministic whatever the input order, and drops duplicate entries', () => {
    const entries: ToolRef[] = [
      { serverId: 'kb', tool: 'search' },
      { serverId: 'web', tool: 'search' },
      { serverId: 'p', tool: 'a.b' },
      { serverId: 'p', tool: 'a b' },
      { serverId: 'p', tool: 'a_b' },
      { serverId: 'q', tool: 'y'.repeat(90) },
    ];
    const reference = [...names(entries, 'never')];
    for (let i = 0; i < 20; i++) {
      const shuffled = [...entries, ...entries].sort(() => Math.random() - 0.5);
      expect([...names(shuffled, 'never')]).toEqual(reference);
    }
    expect(reference).toHaveLength(entries.length);
  });

  it('every exposed name is legal, unique and at most 64 characters', () => {
    const entries: ToolRef[] = [];
    for (const serverId of ['a', 'bb', 'c'.repeat(20)]) {
      for (const tool of ['x', 'x.y', 'x_y', 'ä'.repeat(63), 'long-'.repeat(20), '', '😀']) {
        entries.push({ serverId, tool });
      }
    }
    for (const mode of ['always', 'never'] as const) {
      const map = names(entries, mode);
      expect(map.size).toBe(entries.length);
      for (const [exposed, ref] of map) {
        expect(exposed).toMatch(LEGAL_NAME);
        expect(map.exposedNameOf(ref.serverId, ref.tool)).toBe(exposed);
      }
    }
  });

  it('a hashed name never takes a name an upstream uses as is', () => {
    // Make a real tool whose literal name equals the hashed name another tool would get.
    const hashed = `p__get_sum_${hex6('p__get.sum')}`.slice('p__'.length);
    const map = names([
      { serverId: 'p', tool: 'get_sum' },
      { serverId: 'p', tool: 'get.sum' },
      { serverId: 'p', tool: hashed },
    ]);
    expect(map.exposedNameOf('p', hashed)).toBe(`p__${hashed}`);
    const other = map.exposedNameOf('p', 'get.sum')!;
    expect(other).not.toBe(`p__${hashed}`);
    expect(other.startsWith(`p__get_sum_${hex6('p__get.sum')}`)).toBe(true);
    expect(other).toHaveLength(`p__get_sum_`.length + 8);
  });

  it('keeps the reverse lookup in step when edited', () => {
    const map = names([{ serverId: 'a', tool: 'x' }]);
    map.delete('a__x');
    expect(map.exposedNameOf('a', 'x')).toBeUndefined();
    map.set('renamed', { serverId: 'a', tool: 'x' });
    expect(map.exposedNameOf('a', 'x')).toBe('renamed');
  });
});
