import { afterEach, describe, expect, it } from 'vitest';
import { createRedisClient } from '@keel/tool-sdk';
import { createMemorySessionStore } from './memory-session-store.js';
import { createMemoryTurnStreamStore } from './memory-turn-stream-store.js';
import { createRedisSessionStore } from './redis-session-store.js';
import { createRedisTurnStreamStore } from './redis-turn-stream-store.js';
import { sessionStoreContract } from './session-store.contract.js';
import { ownerIndexKey, sessionKeys } from './session-keys.js';
import { SessionStoreError } from './session-store-error.js';
import { redisTestBed } from './redis-test-kit.js';
import type { RedisTestBed } from './redis-test-kit.js';

sessionStoreContract('memory', async ({ now, idleTtlMs }) => {
  const streams = createMemoryTurnStreamStore({ now });
  const sessions = createMemorySessionStore({ now, idleTtlMs, turnStreams: streams });
  return {
    sessions,
    streams,
    async cleanup() {
      await sessions.close();
      await streams.close();
    },
  };
});

sessionStoreContract(
  'redis',
  async ({ now, idleTtlMs }) => {
    const bed = await redisTestBed();
    const sessions = createRedisSessionStore({
      redis: bed.redis,
      prefix: bed.prefix,
      idleTtlMs,
      now,
    });
    const streams = createRedisTurnStreamStore({ redis: bed.redis, prefix: bed.prefix });
    return {
      sessions,
      streams,
      async cleanup() {
        await sessions.close();
        await streams.close();
        await bed.cleanup();
      },
    };
  },
  { realTime: true },
);

describe('Redis session store', () => {
  const beds: RedisTestBed[] = [];
  afterEach(async () => {
    await Promise.all(beds.splice(0).map((b) => b.cleanup()));
  });
  const setup = async (idleTtlMs = 60_000) => {
    const bed = await redisTestBed();
    beds.push(bed);
    return { bed, sessions: createRedisSessionStore({ ...bed, idleTtlMs }) };
  };
  const owner = { user: 'u:1}', tenant: 't{1' };

  it('keeps its keys under the session hash tag and the owner index under the tenant tag', async () => {
    const { bed, sessions } = await setup();
    await sessions.create({ id: 's1', agent: 'a', owner });
    await sessions.appendMessage('s1', { id: 'm1', role: 'user', parts: [] });
    await sessions.savePending('s1', { x: 1 });
    await sessions.acquireTurn('s1', 'turn-1', 10_000);
    const keys = (await bed.redis.keys(`${bed.prefix}:*`)).sort();
    expect(keys).toEqual(
      [
        `${bed.prefix}:s:{s1}:ids`,
        `${bed.prefix}:s:{s1}:meta`,
        `${bed.prefix}:s:{s1}:msgs`,
        `${bed.prefix}:s:{s1}:pending`,
        `${bed.prefix}:s:{s1}:turn`,
        `${bed.prefix}:u:{t:t%7B1}:u%3A1%7D:sessions`,
      ].sort(),
    );
    expect(ownerIndexKey(bed.prefix, owner)).toBe(`${bed.prefix}:u:{t:t%7B1}:u%3A1%7D:sessions`);
  });

  it('sets the idle TTL on every key of the session, and each write refreshes it', async () => {
    const { bed, sessions } = await setup(60_000);
    const k = sessionKeys(bed.prefix, 's1');
    const index = ownerIndexKey(bed.prefix, owner);
    await sessions.create({ id: 's1', agent: 'a', owner });
    await sessions.appendMessage('s1', { id: 'm1', role: 'user', parts: [] });
    await sessions.savePending('s1', { x: 1 });
    const idleKeys = [k.meta, k.msgs, k.ids, k.pending, index];
    const pttls = async () => Promise.all(idleKeys.map((key) => bed.redis.pttl(key)));
    for (const ttl of await pttls()) {
      expect(ttl).toBeGreaterThan(55_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
    }
    // Pretend most of the idle time has passed; the next append refreshes every key.
    for (const key of idleKeys) await bed.redis.pexpire(key, 1_000);
    await sessions.appendMessage('s1', { id: 'm2', role: 'assistant', parts: [] });
    for (const ttl of await pttls()) expect(ttl).toBeGreaterThan(55_000);
    for (const key of idleKeys) await bed.redis.pexpire(key, 1_000);
    await sessions.get('s1');
    for (const ttl of await pttls()) expect(ttl).toBeGreaterThan(55_000);
    // The lock keeps its own TTL.
    await sessions.acquireTurn('s1', 'turn-1', 5_000);
    expect(await bed.redis.pttl(k.turn)).toBeLessThanOrEqual(5_000);
  });

  it('stores the message log as a list and the id guard as a set (append is O(1))', async () => {
    const { bed, sessions } = await setup();
    const k = sessionKeys(bed.prefix, 's1');
    await sessions.create({ id: 's1', agent: 'a', owner });
    for (let i = 0; i < 5; i++) {
      await sessions.appendMessage('s1', { id: `m${i}`, role: 'user', parts: [] });
    }
    await sessions.appendMessage('s1', { id: 'm0', role: 'user', parts: [] });
    expect(await bed.redis.llen(k.msgs)).toBe(5);
    expect(await bed.redis.scard(k.ids)).toBe(5);
    expect(await bed.redis.hget(k.meta, 'messageCount')).toBe('5');
  });

  it('drops index entries of sessions that expired idle', async () => {
    const { bed, sessions } = await setup();
    await sessions.create({ id: 's1', agent: 'a', owner });
    await sessions.create({ id: 's2', agent: 'a', owner });
    await bed.redis.del(sessionKeys(bed.prefix, 's1').meta);
    expect((await sessions.list(owner)).map((s) => s.id)).toEqual(['s2']);
    expect(await bed.redis.zrange(ownerIndexKey(bed.prefix, owner), 0, -1)).toEqual(['s2']);
  });

  it('fails fast with a retryable UNAVAILABLE when Redis is unreachable', async () => {
    const redis = createRedisClient('redis://127.0.0.1:1');
    try {
      const sessions = createRedisSessionStore({ redis });
      const started = Date.now();
      const error = await sessions.get('s1').catch((e: unknown) => e);
      expect(SessionStoreError.isInstance(error)).toBe(true);
      expect(error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
      expect((error as Error).message).not.toMatch(/127\.0\.0\.1/);
      expect(Date.now() - started).toBeLessThan(1_000);
      await expect(sessions.acquireTurn('s1', 't', 1_000)).rejects.toMatchObject({
        code: 'UNAVAILABLE',
      });
    } finally {
      redis.disconnect();
    }
  });
});
