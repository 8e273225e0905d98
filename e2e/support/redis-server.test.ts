import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { redisCommand, RedisReplyError, startRedisServer } from './redis-server.js';
import type { RedisServer } from './redis-server.js';

describe('redis-server helper', () => {
  const started: RedisServer[] = [];
  const start = async (appendonly: boolean): Promise<RedisServer> => {
    const redis = await startRedisServer({ appendonly });
    started.push(redis);
    return redis;
  };
  afterEach(async () => {
    await Promise.all(started.splice(0).map((redis) => redis.stop()));
  });

  it('starts a private server on a free port with its own dir', async () => {
    const redis = await start(false);
    expect(redis.port).not.toBe(6379);
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect(await redisCommand(redis.port, ['PING'])).toBe('PONG');
    expect(await redisCommand(redis.port, ['CONFIG', 'GET', 'dir'])).toEqual(['dir', redis.dir]);
    expect(await redisCommand(redis.port, ['CONFIG', 'GET', 'save'])).toEqual(['save', '']);
    await expect(redisCommand(redis.port, ['NOPE'])).rejects.toBeInstanceOf(RedisReplyError);

    await redis.stop();
    expect(existsSync(redis.dir)).toBe(false);
    await expect(redisCommand(redis.port, ['PING'], { timeoutMs: 500 })).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
  });

  it('kill -9 then restart: acknowledged writes survive with appendonly yes', async () => {
    const redis = await start(true);
    expect(await redisCommand(redis.port, ['CONFIG', 'GET', 'appendonly'])).toEqual([
      'appendonly',
      'yes',
    ]);
    for (let i = 0; i < 50; i++) {
      expect(await redisCommand(redis.port, ['RPUSH', 'log', `m${i}`])).toBe(i + 1);
    }
    const pid = redis.process.pid;
    await redis.kill('SIGKILL');
    expect(redis.process.running).toBe(false);
    await expect(redisCommand(redis.port, ['PING'], { timeoutMs: 500 })).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });

    await redis.restart();
    expect(redis.process.pid).not.toBe(pid);
    expect(await redisCommand(redis.port, ['LLEN', 'log'])).toBe(50);
    expect(await redisCommand(redis.port, ['LINDEX', 'log', '-1'])).toBe('m49');
  });

  it('kill -9 then restart: writes are gone with appendonly no', async () => {
    const redis = await start(false);
    expect(await redisCommand(redis.port, ['SET', 'k', 'v'])).toBe('OK');
    await redis.kill();
    await redis.restart();
    expect(await redisCommand(redis.port, ['GET', 'k'])).toBeNull();
  });

  it('SIGSTOP freezes the server (commands time out) and SIGCONT thaws it', async () => {
    const redis = await start(false);
    await redis.kill('SIGSTOP');
    await expect(redisCommand(redis.port, ['PING'], { timeoutMs: 300 })).rejects.toThrow(
      /timed out/,
    );
    await redis.kill('SIGCONT');
    expect(await redisCommand(redis.port, ['PING'])).toBe('PONG');
  });

  it('restart of a running server keeps the port', async () => {
    const redis = await start(true);
    await redisCommand(redis.port, ['SET', 'k', 'v']);
    await redis.restart();
    expect(await redisCommand(redis.port, ['GET', 'k'])).toBe('v');
  });
});
