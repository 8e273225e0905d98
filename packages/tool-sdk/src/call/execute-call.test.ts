import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { pino } from 'pino';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from '../http/tool-server.js';
import type { ToolServer } from '../http/tool-server.js';
import { post, toolCallBody } from '../http/__fixtures__/loopback.js';

const MiB = 1024 * 1024;
const TEN_MB = 10 * 1000 * 1000;

const bigStructured = defineTool({
  name: 'big_structured',
  description: 'Returns ~10 MB of rows that fit its output schema',
  input: z.object({}),
  output: z.object({ rows: z.array(z.string()) }),
  handler: () => ({ rows: Array.from({ length: 10_000 }, () => 'r'.repeat(1_000)) }),
});
const bigText = defineTool({
  name: 'big_text',
  description: 'Returns 10 MB of text (no output schema)',
  input: z.object({ char: z.string().default('a'), blocks: z.number().int().default(1) }),
  handler: ({ char, blocks }) => {
    const text = char.repeat(Math.ceil(TEN_MB / Buffer.byteLength(char) / blocks));
    return Array.from({ length: blocks }, () => ({ type: 'text' as const, text }));
  },
});

let server: ToolServer;
let url: string;
beforeAll(async () => {
  server = createToolServer({
    id: 'outputs',
    tools: [bigStructured, bigText],
    auth: 'none',
    logger: pino({ level: 'silent' }),
  });
  url = (await server.listen(0)).url;
});
afterAll(() => server.close({ graceMs: 1_000 }));

type Block = { type: string; text: string };

describe('output caps over loopback HTTP', () => {
  it('S13 ~10 MB of structured output is an INVALID_OUTPUT isError result, never success', async () => {
    const reply = await post(url, toolCallBody('big_structured'));
    expect(reply.status).toBe(200);
    const result = reply.body.result!;
    expect(result.isError).toBe(true);
    expect(result.structuredContent).toBeUndefined();
    expect(result._meta?.['dev.keel/error']).toMatchObject({
      code: 'INVALID_OUTPUT',
      retryable: false,
      details: { reason: 'too_large', limitBytes: MiB },
    });
    // The 10 MB never goes on the wire.
    expect(reply.bytes).toBeLessThan(64 * 1024);
  });

  it('S13 10 MB of text from a tool without an output schema is cut to the 1 MiB cap and flagged dev.keel/truncated', async () => {
    const reply = await post(url, toolCallBody('big_text'));
    const result = reply.body.result!;
    expect(result.isError).toBeUndefined();
    const blocks = result.content as Block[];
    expect(blocks).toHaveLength(1);
    expect(Buffer.byteLength(blocks[0]!.text)).toBe(MiB);
    expect(result._meta?.['dev.keel/truncated']).toEqual({ limitBytes: MiB });
    expect(reply.bytes).toBeLessThan(MiB + 64 * 1024);
  });

  it('S13 with several text blocks, whole blocks are kept up to the cap and the one crossing it is cut', async () => {
    // 40 blocks of 250,000 bytes: four fit whole, the fifth is cut to what is left of 1 MiB.
    const reply = await post(url, toolCallBody('big_text', { blocks: 40 }));
    const result = reply.body.result!;
    const sizes = (result.content as Block[]).map((b) => Buffer.byteLength(b.text));
    expect(sizes).toEqual([250_000, 250_000, 250_000, 250_000, MiB - 1_000_000]);
    expect(result._meta?.['dev.keel/truncated']).toEqual({ limitBytes: MiB });
  });

  it('S13 truncated multi-byte text stays within the cap and never splits a character', async () => {
    // '€' is 3 bytes and 1 MiB is not a multiple of 3: a byte-exact cut lands mid-character.
    const reply = await post(url, toolCallBody('big_text', { char: '€' }));
    const result = reply.body.result!;
    const text = (result.content as Block[])[0]!.text;
    expect(result._meta?.['dev.keel/truncated']).toEqual({ limitBytes: MiB });
    expect(text).not.toContain('\uFFFD');
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MiB);
    expect(Buffer.byteLength(text)).toBeGreaterThan(MiB - 3);
  });
});
