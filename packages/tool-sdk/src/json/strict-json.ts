/** The result of {@link parseStrictJson}. */
export type StrictJsonResult =
  { ok: true; value: unknown } | { ok: false; reason: 'syntax' | 'duplicate_key'; message: string };

/**
 * JSON.parse, plus rejection of duplicate object keys (which JSON.parse resolves silently to the
 * last one, so a signed body could mean two things). Keys are compared after unescaping.
 */
export function parseStrictJson(text: string): StrictJsonResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'syntax', message: 'Parse error: the body is not valid JSON' };
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) {
    return {
      ok: false,
      reason: 'duplicate_key',
      message: `Parse error: duplicate key "${duplicate}"`,
    };
  }
  return { ok: true, value };
}

/** Scans already-valid JSON; returns the first key that appears twice in one object. */
function findDuplicateKey(text: string): string | undefined {
  // Stack of key sets, one per open container (undefined for arrays).
  const stack: (Set<string> | undefined)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(undefined);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] !== undefined;
    } else if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) {
          escaped = true;
          i++;
        } else if (d === 0x22) break;
      }
      if (expectKey) {
        const raw = text.slice(start + 1, i);
        const key = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : raw;
        const keys = stack[stack.length - 1]!;
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
    }
  }
  return undefined;
}
