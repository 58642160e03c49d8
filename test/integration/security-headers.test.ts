// Security headers: the CSP lets pages connect only to the broker's own origin (and the
// thin-client shells in tunnel.allowedOrigins), not to any ws:/wss: host; HSTS is sent only on
// requests that arrived over TLS (directly or, with server.trustProxy, per X-Forwarded-Proto).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../support/harness.ts';

const brokers: TestBroker[] = [];
after(async () => {
  for (const b of brokers) await b.close();
});

async function broker(name: string, config: NonNullable<Parameters<typeof startTestBroker>[0]>['config']) {
  const b = await startTestBroker({ name, config });
  brokers.push(b);
  return b;
}

function directive(csp: string | null, name: string): string[] {
  const d = (csp ?? '').split(';').map((s) => s.trim().split(/\s+/)).find((p) => p[0] === name);
  assert.ok(d, `${name} in ${csp}`);
  return d.slice(1);
}

test("CSP connect-src is the broker's own origin only, plus the configured tunnel origins (as http(s) and ws(s))", async () => {
  const plain = await broker('csp-plain', {});
  const r = await fetch(`${plain.url}/healthz`);
  assert.deepEqual(directive(r.headers.get('content-security-policy'), 'connect-src'), ["'self'"]);

  const shells = await broker('csp-shells', { tunnel: { allowedOrigins: ['https://kiosk.example.org:8443', 'http://thin.local'] } });
  const s = await fetch(`${shells.url}/healthz`);
  assert.deepEqual(directive(s.headers.get('content-security-policy'), 'connect-src'), [
    "'self'", 'https://kiosk.example.org:8443', 'wss://kiosk.example.org:8443', 'http://thin.local', 'ws://thin.local',
  ]);
});

test('HSTS only on secure requests: not over plain HTTP, not for a spoofed X-Forwarded-Proto, yes behind a trusted TLS proxy', async () => {
  const direct = await broker('hsts-direct', { server: { trustProxy: false } });
  assert.equal((await fetch(`${direct.url}/healthz`)).headers.get('strict-transport-security'), null);
  const spoofed = await fetch(`${direct.url}/healthz`, { headers: { 'x-forwarded-proto': 'https' } });
  assert.equal(spoofed.headers.get('strict-transport-security'), null, 'X-Forwarded-Proto is not trusted without server.trustProxy');

  const proxied = await broker('hsts-proxied', { server: { trustProxy: 'loopback' } });
  assert.equal((await fetch(`${proxied.url}/healthz`)).headers.get('strict-transport-security'), null, 'plain HTTP through the proxy');
  const tls = await fetch(`${proxied.url}/healthz`, { headers: { 'x-forwarded-proto': 'https' } });
  assert.match(tls.headers.get('strict-transport-security') ?? '', /^max-age=\d+/);
});
