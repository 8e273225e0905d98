/** Remembers call-token ids so a token is accepted once. */
export interface ReplayStore {
  /** `true` when `jti` was not seen before (and is now remembered until `expiresAtMs`). */
  claim(jti: string, expiresAtMs: number): Promise<boolean>;
  close?(): Promise<void>;
}

/** One process's replay store; bounded by token lifetime (expired ids are swept). */
export function createMemoryReplayStore(now: () => number = Date.now): ReplayStore {
  const seen = new Map<string, number>();
  let nextSweep = 0;
  return {
    async claim(jti, expiresAtMs) {
      const t = now();
      if (t >= nextSweep) {
        for (const [id, exp] of seen) if (exp <= t) seen.delete(id);
        nextSweep = t + 1_000;
      }
      const exp = seen.get(jti);
      if (exp !== undefined && exp > t) return false;
      seen.set(jti, expiresAtMs);
      return true;
    },
  };
}
