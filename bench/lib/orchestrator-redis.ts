/**
 * Removes what a benchmark left in Redis under the orchestrator's default `keel` prefix: the
 * keys of its sessions (`keel:s:{<id>}:*`), their traces (`keel:tr:<traceId>`), and its
 * tenant's usage, budget and hold keys (`...{t:<tenant>}...`). Other keys are never touched.
 */
import { Redis } from 'ioredis';

export async function cleanOrchestratorKeys(
  url: string,
  sessionIds: readonly string[],
  tenant: string,
): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const ids = new Set(sessionIds);
    const doomed: string[] = [];
    for (let i = 0; i < sessionIds.length; i += 500) {
      const pipe = redis.pipeline();
      for (const id of sessionIds.slice(i, i + 500)) pipe.zrange(`keel:s:{${id}}:traces`, 0, -1);
      for (const [, traces] of (await pipe.exec()) ?? []) {
        for (const t of (traces as string[] | null) ?? []) doomed.push(`keel:tr:${t}`);
      }
    }
    const tenantTag = `{t:${tenant}}`;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', 'keel:*', 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const tag = /^keel:s:\{([^}]+)\}/.exec(key);
        if ((tag && ids.has(tag[1]!)) || key.includes(tenantTag)) doomed.push(key);
      }
    } while (cursor !== '0');
    for (let i = 0; i < doomed.length; i += 500) await redis.del(...doomed.slice(i, i + 500));
    return doomed.length;
  } finally {
    redis.disconnect();
  }
}
