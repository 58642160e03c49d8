// A tiny test page (test code, not product code) served on loopback: it loads
// guacamole-common-js from node_modules and connects to the broker's tunnel with a ticket.
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { ROOT } from '../../support/process.ts';

const LIB = join(ROOT, 'node_modules/guacamole-common-js/dist/esm/guacamole-common.js');

const HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>tunnel test</title></head>
<body style="margin:0">
<div id="display"></div>
<script type="module">
import Guacamole from '/guacamole-common.js';
window.t = { clientStates: [], tunnelStates: [], errors: [], instructions: 0 };
window.start = (wsUrl, ticket) => new Promise((resolve) => {
  const tunnel = new Guacamole.WebSocketTunnel(wsUrl);
  const client = new Guacamole.Client(tunnel);
  window.client = client;
  document.getElementById('display').replaceChildren(client.getDisplay().getElement());
  tunnel.onstatechange = (s) => window.t.tunnelStates.push(s);
  client.onstatechange = (s) => {
    window.t.clientStates.push(s);
    if (s === 3) resolve({ ok: true });
    if (s === 5) resolve({ ok: false });
  };
  client.onerror = (e) => { window.t.errors.push({ code: e.code, message: e.message }); resolve({ ok: false, code: e.code, message: e.message }); };
  const keyboard = new Guacamole.Keyboard(document);
  keyboard.onkeydown = (k) => { client.sendKeyEvent(1, k); return false; };
  keyboard.onkeyup = (k) => client.sendKeyEvent(0, k);
  client.connect('token=' + encodeURIComponent(ticket) + '&width=320&height=200');
});
window.pixel = (x, y) => {
  const c = window.client.getDisplay().flatten();
  if (x >= c.width || y >= c.height) return null;
  return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3));
};
window.size = () => { const d = window.client.getDisplay(); return [d.getWidth(), d.getHeight()]; };
</script>
</body></html>`;

/** Serves the page and the library; returns its base URL and a closer. */
export async function servePage(): Promise<{ url: string; close(): Promise<void> }> {
  const lib = readFileSync(LIB);
  const server: Server = createServer((req, res) => {
    if (req.url === '/guacamole-common.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(lib);
    } else if (req.url === '/' || req.url?.startsWith('/?')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(HTML);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
