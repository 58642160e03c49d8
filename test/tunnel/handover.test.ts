// Pure logic of server/tunnel/handover.ts: which Origins may open a tunnel, and what counts as
// a ticket message. (The same rules through a real broker: binding.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { clientAddress, originAllowed, ticketOf } from '../../server/tunnel/handover.ts';

const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
const none = { publicUrl: '', allowedOrigins: [] };

test('Origin: same origin as the Host when publicUrl is empty; default ports folded; other ports, schemes and hosts refused', () => {
  assert.equal(originAllowed(req({ host: 'vdi.example:8080', origin: 'http://vdi.example:8080' }), none), true);
  assert.equal(originAllowed(req({ host: 'VDI.example', origin: 'https://vdi.example' }), none), true);
  assert.equal(originAllowed(req({ host: 'vdi.example:443', origin: 'https://vdi.example' }), none), true);
  assert.equal(originAllowed(req({ host: 'vdi.example:8080', origin: 'http://vdi.example:8081' }), none), false);
  assert.equal(originAllowed(req({ host: 'vdi.example', origin: 'https://evil.example' }), none), false);
  assert.equal(originAllowed(req({ host: 'vdi.example', origin: 'https://vdi.example.evil.example' }), none), false);
  assert.equal(originAllowed(req({ origin: 'https://vdi.example' }), none), false, 'no Host: nothing to be the same as');
  for (const origin of ['null', 'file://', 'chrome-extension://abc', 'not a url', '']) {
    assert.equal(originAllowed(req({ host: 'vdi.example', origin }), none), false, origin);
  }
});

test('Origin: with publicUrl only its origin (not the Host) plus tunnel.allowedOrigins', () => {
  const policy = { publicUrl: 'https://vdi.example/portal/', allowedOrigins: ['https://shell.example:8443'] };
  assert.equal(originAllowed(req({ host: 'internal:8080', origin: 'https://vdi.example' }), policy), true);
  assert.equal(originAllowed(req({ host: 'internal:8080', origin: 'http://internal:8080' }), policy), false);
  assert.equal(originAllowed(req({ host: 'internal:8080', origin: 'https://shell.example:8443' }), policy), true);
  assert.equal(originAllowed(req({ host: 'internal:8080', origin: 'https://shell.example' }), policy), false);
  assert.equal(originAllowed(req({ host: 'vdi.example', origin: 'https://shell.example:8443' }), { ...none, allowedOrigins: policy.allowedOrigins }), true);
});

test('no Origin: only an API-key client (Authorization header), never a cookie', () => {
  assert.equal(originAllowed(req({ host: 'vdi.example', cookie: 'vdi.sid=s%3Ax.y' }), none), false);
  assert.equal(originAllowed(req({ host: 'vdi.example' }), none), false);
  assert.equal(originAllowed(req({ host: 'vdi.example', authorization: 'Bearer vdik_x_y' }), none), true);
});

test('a ticket message is exactly one `0.,6.ticket,N.<ticket>;` instruction', () => {
  const t = 'A'.repeat(43);
  assert.equal(ticketOf(Buffer.from(`0.,6.ticket,43.${t};`)), t);
  for (const bad of [`0.,6.ticket,42.${t};`, `0.,6.ticket,43.${t}`, `0.,6.ticket,43.${t};4.sync,1.0;`, `5.hello;0.,6.ticket,43.${t};`, `6.ticket,43.${t};`, `0.,4.ping,43.${t};`, `0.,6.ticket,${600}.${'a'.repeat(600)};`, '', 'garbage']) {
    assert.equal(ticketOf(Buffer.from(bad)), '', bad);
  }
});

test("the audit's client address follows express's trust proxy rule (X-Forwarded-For only through trusted hops)", () => {
  const r = { headers: { 'x-forwarded-for': '203.0.113.9, 10.0.0.7' }, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
  assert.equal(clientAddress(r), '127.0.0.1', 'no proxy trusted');
  assert.equal(clientAddress(r, () => false), '127.0.0.1');
  assert.equal(clientAddress(r, (_a, hop) => hop < 1), '10.0.0.7', 'one trusted hop');
  assert.equal(clientAddress(r, () => true), '203.0.113.9', 'every hop trusted');
});
