// A tiny test page (test code, not product code) served on loopback: it loads
// guacamole-common-js from node_modules and connects to the broker's tunnel with a ticket,
// handed over as the first message the way client/src/viewer/ticket-tunnel.ts does. It is
// another origin than the broker's: the broker must list it in tunnel.allowedOrigins (like a
// thin-client shell), and the page needs the user's login cookie (withLogin).
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
// As client/src/viewer/ticket-tunnel.ts: the WebSocket made during connect() sends the ticket first.
const ticketTunnel = (wsUrl, ticket) => {
  const tunnel = new Guacamole.WebSocketTunnel(wsUrl);
  const connect = tunnel.connect.bind(tunnel);
  tunnel.connect = (data) => {
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(u, p) {
        super(u, p);
        this.addEventListener('open', () => this.send('0.,6.ticket,' + ticket.length + '.' + ticket + ';'), { once: true });
      }
    };
    try { connect(data); } finally { window.WebSocket = Native; }
  };
  return tunnel;
};
window.start = (wsUrl, ticket) => new Promise((resolve) => {
  const tunnel = ticketTunnel(wsUrl, ticket);
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
  client.connect('width=320&height=200');
});
window.pixel = (x, y) => {
  const c = window.client.getDisplay().flatten();
  if (x >= c.width || y >= c.height) return null;
  return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3));
};
window.size = () => { const d = window.client.getDisplay(); return [d.getWidth(), d.getHeight()]; };
</script>
</body></html>`;

/** Gives a browser page the API client's login: its session cookie, for the broker's host. */
export async function withLogin(p: { context(): { addCookies(c: Array<{ name: string; value: string; url: string }>): Promise<void> } }, brokerUrl: string, client: { cookie: string }): Promise<void> {
  const eq = client.cookie.indexOf('=');
  await p.context().addCookies([{ name: client.cookie.slice(0, eq), value: client.cookie.slice(eq + 1), url: brokerUrl }]);
}

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
