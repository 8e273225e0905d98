import { z } from 'zod';
import { defineTool } from '../tool/define-tool.js';
import type { AnyTool } from '../tool/define-tool.js';

// A 1x1 PNG and a tiny WAV header: real media, as small as they get.
const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const WAV = 'UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=';

/**
 * The reference `test_*` tools the official MCP conformance suite calls. Opt-in: register them
 * on a server built with this SDK to run the suite against it.
 */
export function conformanceTools(): AnyTool[] {
  const empty = z.object({});
  return [
    defineTool({
      name: 'test_simple_text',
      description: 'Returns simple text content',
      input: empty,
      handler: () => 'This is a simple text response for testing.',
    }),
    defineTool({
      name: 'test_image_content',
      description: 'Returns image content',
      input: empty,
      handler: () => [{ type: 'image' as const, data: PNG, mimeType: 'image/png' }],
    }),
    defineTool({
      name: 'test_audio_content',
      description: 'Returns audio content',
      input: empty,
      handler: () => [{ type: 'audio' as const, data: WAV, mimeType: 'audio/wav' }],
    }),
    defineTool({
      name: 'test_embedded_resource',
      description: 'Returns an embedded resource',
      input: empty,
      handler: () => [
        {
          type: 'resource' as const,
          resource: {
            uri: 'test://embedded-resource',
            mimeType: 'text/plain',
            text: 'This is an embedded resource content.',
          },
        },
      ],
    }),
    defineTool({
      name: 'test_multiple_content_types',
      description: 'Returns text, image and resource content',
      input: empty,
      handler: () => [
        { type: 'text' as const, text: 'Multiple content types test:' },
        { type: 'image' as const, data: PNG, mimeType: 'image/png' },
        {
          type: 'resource' as const,
          resource: {
            uri: 'test://mixed-content-resource',
            mimeType: 'application/json',
            text: '{"test":"data","value":123}',
          },
        },
      ],
    }),
    defineTool({
      name: 'test_tool_with_logging',
      description: 'Sends log messages while it runs',
      input: empty,
      handler: async (_input, ctx) => {
        await ctx.log('info', 'Tool execution started');
        await ctx.log('info', 'Tool processing data');
        await ctx.log('info', 'Tool execution completed');
        return 'Logging test completed';
      },
    }),
    defineTool({
      name: 'test_error_handling',
      description: 'Always fails with an error result',
      input: empty,
      errors: {
        TEST_ERROR: { retryable: false, description: 'The error this tool always returns' },
      },
      handler: (_input, ctx) =>
        ctx.fail('TEST_ERROR', 'This tool intentionally returns an error for testing'),
    }),
    defineTool({
      name: 'test_tool_with_progress',
      description: 'Reports progress three times',
      input: empty,
      handler: async (_input, ctx) => {
        await ctx.progress(0, 100, 'started');
        await ctx.progress(50, 100, 'half way');
        await ctx.progress(100, 100, 'done');
        return 'Progress test completed';
      },
    }),
  ];
}
