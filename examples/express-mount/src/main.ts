// An existing express backend with Keel tools mounted at /keel/mcp: `pnpm start`.
import { createInventoryApp } from './app.js';

const { app, tools } = createInventoryApp();
const port = Number(process.env.PORT ?? 7103);
const http = app.listen(port, process.env.HOST ?? '127.0.0.1', () => {
  process.stdout.write(
    `inventory app at http://127.0.0.1:${port}/api/stock/SKU-MUG, MCP at http://127.0.0.1:${port}/keel/mcp\n`,
  );
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => void tools.close().then(() => http.close(() => process.exit(0))));
}
