import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

describe('stdio', () => {
  it('serves tools to an MCP client over stdio (a real child process)', async () => {
    const script = fileURLToPath(new URL('./__fixtures__/stdio-server.ts', import.meta.url));
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ['--import', 'tsx', script],
      stderr: 'pipe',
    });
    const client = new Client({ name: 'test', version: '1.0.0' });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(['add']);
      const result = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
      expect(result.structuredContent).toEqual({ sum: 5 });
      const bad = await client.callTool({ name: 'add', arguments: { a: 'x', b: 3 } });
      expect(bad.isError).toBe(true);
    } finally {
      await client.close();
    }
  });
});
