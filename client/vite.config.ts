// The web client: Preact (JSX compiled by Vite's built-in esbuild, no plugin) bundled into
// client/dist, which the broker serves at /. `npm run dev:client` proxies /api (and the
// tunnel WebSocket) to a broker on VDI_DEV_BROKER (default http://127.0.0.1:8080).
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const broker = process.env.VDI_DEV_BROKER ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  // client/public/* (favicon.svg, favicon.ico) is copied to dist as is, served at /.
  publicDir: 'public',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Source maps would publish the client's sources next to it; VDI_CLIENT_SOURCEMAPS=1 for debugging.
    sourcemap: process.env.VDI_CLIENT_SOURCEMAPS === '1',
    // The CSP forbids inline scripts: keep every module a file.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  server: {
    host: '127.0.0.1',
    proxy: { '/api': { target: broker, ws: true, changeOrigin: false } },
  },
});
