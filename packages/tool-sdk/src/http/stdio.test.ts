import { afterEach, describe, expect, it, vi } from 'vitest';
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const script = fileURLToPath(new URL('./__fixtures__/stdio-server.ts', import.meta.url));

describe('stdio', () => {
  it('serves tools to an MCP client over stdio (a real child process)', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ['--import', 'tsx', script],
      stderr: 'pipe',
    });
    const client = new Client({ name: 'test', version: '1.0.0' });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(['add', 'wait_for_cancel']);
      const result = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
      expect(result.structuredContent).toEqual({ sum: 5 });
      const bad = await client.callTool({ name: 'add', arguments: { a: 'x', b: 3 } });
      expect(bad.isError).toBe(true);
    } finally {
      await client.close();
    }
  });

  describe('cancellation', () => {
    let child: ChildProcessWithoutNullStreams | undefined;
    let dir: string | undefined;
    afterEach(async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child!.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
      child = undefined;
      dir = undefined;
    });

    it('notifications/cancelled aborts the running call: ctx.signal fires with CANCELLED and no result is sent', async () => {
      dir = mkdtempSync(join(tmpdir(), 'keel-stdio-'));
      const events = join(dir, 'events.log');
      child = spawn(process.execPath, ['--import', 'tsx', script], {
        env: { ...process.env, STDIO_FIXTURE_EVENTS: events },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const proc = child;
      let stderr = '';
      proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      // Raw newline-delimited JSON-RPC, so the test sees every message the server sends.
      const received: { id?: unknown; method?: string; params?: Record<string, unknown> }[] = [];
      createInterface({ input: proc.stdout }).on('line', (line) => {
        if (line.trim()) received.push(JSON.parse(line));
      });
      const send = (message: Record<string, unknown>) =>
        proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
      const waitFor = (what: string, match: (m: (typeof received)[number]) => boolean) =>
        vi.waitFor(
          () => {
            if (!received.some(match)) throw new Error(`no ${what} yet; stderr: ${stderr}`);
          },
          { timeout: 10_000, interval: 20 },
        );

      send({
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'test', version: '1.0.0' },
        },
      });
      await waitFor('initialize result', (m) => m.id === 1);
      send({ method: 'notifications/initialized' });
      send({
        id: 2,
        method: 'tools/call',
        params: { name: 'wait_for_cancel', arguments: {}, _meta: { progressToken: 'p2' } },
      });
      // The tool is running once its first progress notification arrives.
      await waitFor(
        'progress from the running call',
        (m) => m.method === 'notifications/progress' && m.params?.progressToken === 'p2',
      );
      send({ method: 'notifications/cancelled', params: { requestId: 2, reason: 'user stopped' } });

      await vi.waitFor(() => expect(readFileSync(events, 'utf8')).toBe('aborted CANCELLED\n'), {
        timeout: 5_000,
        interval: 20,
      });
      // The server keeps serving; by the time it answers a later ping, the cancelled call's
      // outcome has been handled, and per MCP no response for it was sent.
      send({ id: 3, method: 'ping' });
      await waitFor('ping result', (m) => m.id === 3);
      expect(received.filter((m) => m.id === 2)).toEqual([]);
    });
  });
});
