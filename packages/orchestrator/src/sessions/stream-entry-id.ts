/** Stream entry ids `<ms>-<seq>` (the Redis Stream id format), compared numerically. */

export function parseEntryId(id: string): [number, number] {
  const dash = id.indexOf('-');
  if (dash < 0) return [Number(id) || 0, 0];
  return [Number(id.slice(0, dash)) || 0, Number(id.slice(dash + 1)) || 0];
}

/** Negative when `a` is older than `b`, 0 when equal, positive when newer. */
export function compareEntryIds(a: string, b: string): number {
  const [am, as] = parseEntryId(a);
  const [bm, bs] = parseEntryId(b);
  return am - bm || as - bs;
}

/** Whether `id` has the `<ms>-<seq>` shape (so it is safe to pass to Redis). */
export function isEntryId(id: string): boolean {
  return /^\d{1,20}-\d{1,20}$/.test(id);
}
