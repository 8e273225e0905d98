// P5 floor (a diagnostic, not a benchmark): memory per open SSE response of a bare node:http
// server, and of express, with nothing else per stream — what one held connection costs before
// any orchestrator state. Same method as P5: RSS and heap after a forced GC, before and after
// 1,000 streams opened in batches of 50.  Run: node bench/p5-floor.mjs raw|express
import { spawn } from 'node:child_process';
import { request, Agent } from 'node:http';
const mode = process.argv[2];
const child = spawn(
  process.execPath,
  ['--expose-gc', new URL('./p5-floor-server.mjs', import.meta.url).pathname, mode],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const lines = [];
child.stdout.on('data', (d) => lines.push(...String(d).split('\n').filter(Boolean)));
const waitLine = async (prefix, from) => {
  for (;;) {
    const l = lines.slice(from).find((x) => x.startsWith(prefix));
    if (l) return l;
    await new Promise((r) => setTimeout(r, 20));
  }
};
const port = Number((await waitLine('PORT', 0)).split(' ')[1]);
const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
const open = (i) =>
  new Promise((resolve) => {
    const body = JSON.stringify({
      id: 'm' + i,
      role: 'user',
      parts: [{ type: 'text', text: 'hello' }],
    });
    const req = request(
      {
        port,
        host: '127.0.0.1',
        path: '/x/' + i,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.once('data', () => resolve(res));
      },
    );
    req.end(body);
  });
const n0 = lines.length;
child.kill('SIGUSR2');
const before = await waitLine('MEM', n0);
const all = [];
for (let i = 0; i < 1000; i += 50)
  all.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => open(i + j)))));
await new Promise((r) => setTimeout(r, 500));
const n1 = lines.length;
child.kill('SIGUSR2');
const after = await waitLine('MEM', n1);
const [, r0, h0] = before.split(' ').map(Number);
const [, r1, h1] = after.split(' ').map(Number);
console.log(
  mode,
  'rss KB/stream',
  ((r1 - r0) / 1000).toFixed(1),
  'heap KB/stream',
  ((h1 - h0) / 1000).toFixed(1),
);
child.kill('SIGKILL');
process.exit(0);
