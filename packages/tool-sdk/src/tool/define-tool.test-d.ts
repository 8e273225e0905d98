import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { defineTool } from './define-tool.js';

describe('defineTool types', () => {
  it('infers the handler input from the input schema', () => {
    defineTool({
      name: 'get_order',
      description: 'd',
      input: z.object({ orderId: z.string(), limit: z.number().optional() }),
      output: z.object({ id: z.string() }),
      handler: (input) => {
        expectTypeOf(input).toEqualTypeOf<{ orderId: string; limit?: number | undefined }>();
        return { id: input.orderId };
      },
    });
  });

  it('checks the handler return type against the output schema', () => {
    defineTool({
      name: 'get_order',
      description: 'd',
      input: z.object({}),
      output: z.object({ id: z.string() }),
      // @ts-expect-error id must be a string
      handler: () => ({ id: 42 }),
    });
    defineTool({
      name: 'get_order',
      description: 'd',
      input: z.object({}),
      output: z.object({ id: z.string() }),
      // @ts-expect-error a missing field is an error
      handler: async () => ({}),
    });
  });

  it('lets tools without an output schema return text or content blocks', () => {
    defineTool({
      name: 'a',
      description: 'd',
      input: z.object({}),
      handler: () => 'plain text',
    });
    defineTool({
      name: 'b',
      description: 'd',
      input: z.object({}),
      handler: async () => [{ type: 'image' as const, data: 'AAAA', mimeType: 'image/png' }],
    });
    defineTool({
      name: 'c',
      description: 'd',
      input: z.object({}),
      // @ts-expect-error a number is not content
      handler: () => 42,
    });
  });

  it('types ctx.fail against the declared error codes', () => {
    defineTool({
      name: 'refund',
      description: 'd',
      input: z.object({ orderId: z.string() }),
      errors: {
        ORDER_NOT_FOUND: { retryable: false, description: 'no order' },
        NOT_REFUNDABLE: { retryable: false, description: 'cannot refund' },
      },
      handler: (input, ctx) => {
        if (input.orderId === 'x') ctx.fail('ORDER_NOT_FOUND', 'missing');
        // @ts-expect-error undeclared code
        ctx.fail('SOMETHING_ELSE', 'nope');
        return 'ok';
      },
    });
  });

  it('exposes the caller and signal', () => {
    defineTool({
      name: 'whoami',
      description: 'd',
      input: z.object({}),
      handler: (_input, ctx) => {
        expectTypeOf(ctx.signal).toEqualTypeOf<AbortSignal>();
        expectTypeOf(ctx.caller?.sub).toEqualTypeOf<string | undefined>();
        return ctx.caller?.sub ?? 'anonymous';
      },
    });
  });
});
