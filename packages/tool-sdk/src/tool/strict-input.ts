/**
 * zod strips unknown keys of nested objects silently; Keel rejects them. Comparing the raw input
 * with the parsed value finds every key zod dropped, at any depth, with its path.
 */
export type InputPath = (string | number)[];

/** The path of the first key present in `raw` but dropped from `parsed`, if any. */
export function findUnknownKey(
  raw: unknown,
  parsed: unknown,
  path: InputPath = [],
): InputPath | undefined {
  if (Array.isArray(raw) && Array.isArray(parsed)) {
    const n = Math.min(raw.length, parsed.length);
    for (let i = 0; i < n; i++) {
      const found = findUnknownKey(raw[i], parsed[i], [...path, i]);
      if (found) return found;
    }
    return undefined;
  }
  if (!isPlainObject(raw) || !isPlainObject(parsed)) return undefined;
  for (const key of Object.keys(raw)) {
    if (!Object.prototype.hasOwnProperty.call(parsed, key)) return [...path, key];
    const found = findUnknownKey(raw[key], parsed[key], [...path, key]);
    if (found) return found;
  }
  return undefined;
}

/** The path of the first `__proto__` key anywhere in a parsed JSON value. */
export function findProtoKey(value: unknown, path: InputPath = []): InputPath | undefined {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findProtoKey(value[i], [...path, i]);
      if (found) return found;
    }
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  for (const key of Object.keys(value)) {
    if (key === '__proto__') return [...path, key];
    const found = findProtoKey((value as Record<string, unknown>)[key], [...path, key]);
    if (found) return found;
  }
  return undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
