import { describe, expect, it } from 'vitest';
import { parseStrictJson } from './strict-json.js';

describe('parseStrictJson', () => {
  it('parses valid JSON', () => {
    expect(parseStrictJson('{"a":[1,{"b":"x,\\"}"}],"c":{"a":1}}')).toEqual({
      ok: true,
      value: { a: [1, { b: 'x,"}' }], c: { a: 1 } },
    });
  });
  it('S11 rejects duplicate keys, also when one is escaped', () => {
    expect(parseStrictJson('{"a":1,"a":2}')).toMatchObject({ ok: false, reason: 'duplicate_key' });
    expect(parseStrictJson('{"x":{"n":1,"\\u006e":2}}')).toMatchObject({
      ok: false,
      reason: 'duplicate_key',
    });
  });
  it('allows the same key in sibling objects and string values that look like keys', () => {
    expect(parseStrictJson('[{"a":1},{"a":2}]').ok).toBe(true);
    expect(parseStrictJson('{"a":"a","b":["a","a"]}').ok).toBe(true);
  });
  it('reports syntax errors', () => {
    expect(parseStrictJson('{"a":')).toMatchObject({ ok: false, reason: 'syntax' });
  });
});
