/**
 * Starts `@modelcontextprotocol/server-everything` over Streamable HTTP as a real child process:
 * a third-party, stateful MCP server (it gives out `Mcp-Session-Id`s) for integration tests.
 * Its environment is scrubbed, because one of its tools returns the environment.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';

export interface EverythingServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startEverythingServer(
  options: { port?: number } = {},
): Promise<EverythingServer> {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('@modelcontextprotocol/server-everything/package.json');
  const entry = path.join(path.dirname(pkg), 'dist', 'index.js');
  const port = options.port ?? (await freePort());
  const child = spawn(process.execPath, [entry, 'streamableHttp'], {
    env: { PORT: String(port), PATH: '/usr/bin:/bin', NODE_ENV: 'test' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exitHook = () => child.kill('SIGKILL');
  process.once('exit', exitHook);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server-everything did not start')), 15_000);
    const onData = (chunk: Buffer) => {
      if (chunk.toString().includes('listening on port')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server-everything exited with ${code}`));
    });
  });
  child.stdout.resume();
  child.stderr.resume();
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    async stop() {
      process.removeListener('exit', exitHook);
      if (child.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
    },
  };
}
