import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { pino } from 'pino';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from './tool-server.js';
import { createTestSigner } from '../test-kit/index.js';

// Deterministic PRNG so a failure can be replayed.
function rng(seed: number) {
  return () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
}

const FRAGMENTS = [
  '{',
  '}',
  '[',
  ']',
  '"jsonrpc"',
  ':',
  '"2.0"',
  ',',
  '"id"',
  '1',
  'null',
  '"method"',
  '"tools/call"',
  '"tools/list"',
  '"params"',
  '"name"',
  '"echo"',
  '"arguments"',
  '"__proto__"',
  '"x"',
  '1e999',
  '-0',
  '"\\u0000"',
  'true',
  '"a"',
  '{}',
  '[]',
  ' ',
  '\\',
];

describe('S10 fuzz', () => {
  it('S10 10,000 malformed bodies: 0 crashes, 0 5xx, 0 handler calls', async () => {
    const spy = vi.fn();
    const echo = defineTool({
      name: 'echo',
      description: 'd',
      input: z.object({ m: z.string() }),
      handler: () => (spy(), 'x'),
    });
    const signer = await createTestSigner();
    const server = createToolServer({
      id: 'fuzz',
      tools: [echo],
      auth: signer.auth,
      logger: pino({ level: 'silent' }),
    });
    const next = rng(42);
    const statuses = new Map<number, number>();
    for (let i = 0; i < 10_000; i++) {
      const parts = Array.from(
        { length: 1 + Math.floor(next() * 12) },
        () => FRAGMENTS[Math.floor(next() * FRAGMENTS.length)]!,
      );
      const body = parts.join('');
      // Half signed correctly (so the parser and dispatcher are reached), half unsigned.
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      };
      if (i % 2 === 0)
        headers.authorization = `Bearer ${await signer.sign(body, { aud: 'fuzz', mth: 'x' })}`;
      const response = await server.fetch(
        new Request('http://localhost/mcp', { method: 'POST', headers, body }),
      );
      await response.text();
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    }
    expect([...statuses.keys()].filter((s) => s >= 500)).toEqual([]);
    expect(spy).not.toHaveBeenCalled();
    await server.close();
  });
});
