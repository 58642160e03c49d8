// A real Xvnc whose VncAuth password is non-ASCII ("pässwörd": VNC uses its first 8 UTF-8
// bytes, as TigerVNC's vncpasswd stores them), reached through the broker's tunnel and the
// built-in gateway (guacd.host empty): guacamole-lite 1.2.0 alone would decode the password
// as ASCII. Xvnc is stopped by pid, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { TestBroker } from '../support/harness.ts';
import { hasXvnc, startXvnc, type Xvnc } from '../gateway/support/xvnc.ts';
import { TunnelClient } from './support/tunnel-client.ts';
import { CONSOLE_PASSWORD, connectTicket, liveSession, login, streamingBroker } from './support/fixtures.ts';

const missing = hasXvnc() ? null : 'Xvnc/xsetroot/vncpasswd not installed (apt-get install tigervnc-standalone-server tigervnc-tools x11-xserver-utils)';
let xvnc: Xvnc | undefined;
let tb: TestBroker | undefined;
const clients: TunnelClient[] = [];

before(async () => {
  if (missing) return;
  xvnc = await startXvnc({ width: 320, height: 200, password: CONSOLE_PASSWORD });
  tb = await streamingBroker('tunnel-xvnc', {}, { protocol: 'vnc', host: '127.0.0.1', port: xvnc.port, password: CONSOLE_PASSWORD });
});
after(async () => {
  for (const c of clients) c.close();
  await tb?.close();
  await xvnc?.stop();
});

const isFill = (rgb: number[]) => (i: { opcode: string; args: string[] }) => i.opcode === 'cfill' && i.args.slice(2, 5).map(Number).join() === rgb.join();

test('non-ASCII VNC password end to end through the tunnel and the built-in gateway', async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  // The built-in gateway: a unix socket (default) or a TCP port, never an external guacd.
  const g = tb!.tunnel.guacd as { port?: number; path?: string };
  assert.ok(tb!.config.guacd.host === '' && (!!g.path || (g.port ?? 0) > 0), 'the built-in gateway is used');
  const alice = await login(tb!, 'alice');
  const { session } = await liveSession(tb!, alice);
  await xvnc!.x('xsetroot', '-solid', '#c83264');
  const c = new TunnelClient(tb!.url, { ticket: await connectTicket(alice, session), as: alice, query: 'width=320&height=200' });
  clients.push(c);
  await c.ready(15_000);
  await c.next((i) => i.opcode === 'size' && i.args.join() === '0,320,200', 15_000);
  await c.next(isFill([200, 50, 100]), 15_000);
  // Live: a change on the desktop arrives.
  await xvnc!.x('xsetroot', '-solid', '#1e90ff');
  await c.next(isFill([30, 144, 255]), 15_000);
  c.close();
});

test('a wrong console password is reported as 0x0301 by the gateway, through the tunnel', async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  tb!.provider.consoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: xvnc!.port, password: 'p\u00e4ssw\u00f6rd'.normalize('NFD') };
  try {
    const alice = await login(tb!, 'alice');
    const { session } = await liveSession(tb!, alice);
    const c = new TunnelClient(tb!.url, { ticket: await connectTicket(alice, session), as: alice });
    clients.push(c);
    const e = await c.ended(15_000);
    assert.equal(Number(e.error?.args[1]), 0x0301, JSON.stringify(c.received.slice(-3)));
  } finally {
    tb!.provider.consoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: xvnc!.port, password: CONSOLE_PASSWORD };
  }
});

test('the browser\'s image formats reach the gateway through the tunnel: WebP when it offers it, never when it does not', async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const alice = await login(tb!, 'alice');
  const { session } = await liveSession(tb!, alice);
  // A still, sharp pattern: lossless, and WebP lossless only for a client that decodes WebP.
  await xvnc!.x('xsetroot', '-mod', '5', '5', '-fg', '#203040', '-bg', '#f0e0d0');
  const imagesOf = async (query: string) => {
    const c = new TunnelClient(tb!.url, { ticket: await connectTicket(alice, session), as: alice, query });
    clients.push(c);
    await c.ready(15_000);
    await c.next((i) => i.opcode === 'img', 15_000);
    // The first frame ends with its sync; every image of it has been sent by then.
    await c.next((i) => i.opcode === 'sync', 15_000);
    c.close();
    return new Set(c.received.filter((i) => i.opcode === 'img').map((i) => i.args[3]));
  };
  // A connection that catches the root window mid-paint sees it change (hot: PNG); the next
  // one sees it still. Each client's first frame is encoded for it alone.
  const withWebp = 'width=320&height=200&image=image%2Fjpeg&image=image%2Fwebp';
  let offered = await imagesOf(withWebp);
  if (!offered.has('image/webp')) offered = await imagesOf(withWebp);
  assert.ok(offered.has('image/webp'), `with WebP offered: ${[...offered].join(', ')}`);
  const plain = await imagesOf('width=320&height=200');
  assert.ok(plain.size > 0 && !plain.has('image/webp'), `without an offer: ${[...plain].join(', ')}`);
  // A forged format is ignored, not passed on.
  const forged = await imagesOf('width=320&height=200&image=image%2Fsvg%2Bxml');
  assert.ok(forged.size > 0 && [...forged].every((m) => m === 'image/png' || m === 'image/jpeg'), [...forged].join(', '));
});
