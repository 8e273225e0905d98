// The server side of p5-floor.mjs: holds every SSE response open after its first frame.
import { createServer } from 'node:http';
const useExpress = process.argv[2] === 'express';
const held = [];
let handler = (req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write('id: 1-0\ndata: {"type":"start"}\n\n');
    held.push(res);
  });
};
if (useExpress) {
  const express = (await import('express')).default;
  const app = express();
  app.use(express.json());
  app.post('/x/:id', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write('id: 1-0\ndata: {"type":"start"}\n\n');
    held.push(res);
  });
  handler = app;
}
const server = createServer(handler);
server.listen(0, '127.0.0.1', () => console.log('PORT', server.address().port));
process.on('SIGUSR2', async () => {
  globalThis.gc();
  globalThis.gc();
  const m = process.memoryUsage();
  const rss = Number(
    /VmRSS:\s+(\d+)/.exec((await import('node:fs')).readFileSync('/proc/self/status', 'utf8'))?.[1],
  );
  console.log('MEM', rss, Math.round(m.heapUsed / 1024), held.length);
});
