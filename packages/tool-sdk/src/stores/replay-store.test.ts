import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { pino } from 'pino';
import { defineTool } from '../tool/define-tool.js';
import { createToolServer } from '../http/tool-server.js';
import { createTestSigner } from '../test-kit/index.js';
import { post, runLimited, toolCallBody } from '../http/__fixtures__/loopback.js';

const logger = pino({ level: 'silent' });

describe('memory replay store (one replica)', () => {
  it('S05 the same signed tools/call replayed 1,000x to one tool server over loopback runs exactly once', async () => {
    const spy = vi.fn();
    const charge = defineTool({
      name: 'charge',
      description: 'A side effect that must not repeat',
      input: z.object({ amount: z.number() }),
      handler: ({ amount }) => {
        spy(amount);
        return 'charged';
      },
    });
    const signer = await createTestSigner();
    const server = createToolServer({
      id: 'replay-one',
      tools: [charge],
      auth: signer.auth,
      logger,
    });
    const { url } = await server.listen(0);
    try {
      const body = toolCallBody('charge', { amount: 5 });
      const token = await signer.sign(body, { aud: 'replay-one' });
      const replies = await runLimited(1_000, 20, () => post(url, body, token));
      const ok = replies.filter((r) => r.status === 200);
      expect(ok).toHaveLength(1);
      expect(ok[0]!.body.result?.isError).toBeUndefined();
      const refused = replies.filter((r) => r.status === 401);
      expect(refused).toHaveLength(999);
      // Refused as a replay, not for some other reason a broken test could produce.
      expect(new Set(refused.map((r) => r.body.error?.data?.details?.reason))).toEqual(
        new Set(['token replayed']),
      );
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      await server.close({ graceMs: 1_000 });
    }
  });
});
