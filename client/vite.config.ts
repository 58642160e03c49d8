// The web client: Preact (JSX compiled by Vite's built-in esbuild, no plugin) bundled into
// client/dist, which the broker serves at /. `npm run dev:client` proxies /api (and the
// tunnel WebSocket) to a broker on VDI_DEV_BROKER (default http://127.0.0.1:8080).
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const broker = process.env.VDI_DEV_BROKER ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  publicDir: false,
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    // The CSP forbids inline scripts: keep every module a file.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  server: {
    host: '127.0.0.1',
    proxy: { '/api': { target: broker, ws: true, changeOrigin: false } },
  },
});
