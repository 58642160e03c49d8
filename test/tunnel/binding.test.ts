// Tickets are no bearer tokens: a ticket opens a tunnel only for the login that asked for it
// (the same cookie session, or the same API key), from an allowed Origin, handed over as the
// WebSocket's first message and never in the URL. Every refusal closes the socket with a
// Guacamole status and is audited as `tunnel.refused` (reason, who, session; never the ticket).
// Real broker, real Redis, real WebSockets, and a real Xvnc through the built-in gateway.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { TestBroker, ApiClient } from '../support/harness.ts';
import { hasXvnc, startXvnc, type Xvnc } from '../gateway/support/xvnc.ts';
import { TunnelClient, type OpenOptions } from './support/tunnel-client.ts';
import { CONSOLE_PASSWORD, connectTicket, liveSession, login, streamingBroker, until } from './support/fixtures.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import type { AuditEntry } from '../../server/store/index.ts';

const missing = hasXvnc() ? null : 'Xvnc/xsetroot/vncpasswd not installed (apt-get install tigervnc-standalone-server tigervnc-tools x11-xserver-utils)';
const SHELL = 'https://shell.example:8443'; // a thin-client shell's origin, configured as allowed
const UNAUTHORIZED = 0x0301;
const FORBIDDEN = 0x0303;

let xvnc: Xvnc | undefined;
let tb: TestBroker | undefined;
const clients: TunnelClient[] = [];

before(async () => {
  if (missing) return;
  xvnc = await startXvnc({ width: 320, height: 200, password: CONSOLE_PASSWORD });
  tb = await streamingBroker('tunnel-binding', { tunnel: { allowedOrigins: [SHELL] } }, { protocol: 'vnc', host: '127.0.0.1', port: xvnc.port, password: CONSOLE_PASSWORD });
});
after(async () => {
  for (const c of clients) c.close();
  await tb?.close();
  await xvnc?.stop();
});

const open = (o: OpenOptions) => {
  const c = new TunnelClient(tb!.url, o);
  clients.push(c);
  return c;
};

/** The desktop streams: guacd's `ready`, then Xvnc's screen size. */
async function streams(c: TunnelClient): Promise<void> {
  await c.ready(15_000);
  await c.next((i) => i.opcode === 'size' && i.args.join() === '0,320,200', 15_000);
}

/** Closed with `error <status>` and that status as the close reason; nothing of the desktop came through. */
async function refusedWith(c: TunnelClient, status: number): Promise<void> {
  const e = await c.ended(15_000);
  assert.equal(Number(e.error?.args[1]), status, `status ${e.error?.args[1]}: ${e.error?.args[0]}`);
  assert.equal(e.reason, String(status));
  assert.ok(!c.received.some((i) => i.opcode === 'size' || (i.opcode === '' && i.args.length === 1)), 'no guacd connection reached the client');
}

/** The audit entry of that refusal: reason, actor, session; the ticket itself nowhere in it. */
async function audited(reason: string, session: string, actor: string, ticket: string): Promise<AuditEntry> {
  const e = await until(async () => {
    const { entries } = await tb!.app.broker.audit.query({ action: 'tunnel.refused', target: session, limit: 100 });
    return entries.find((x) => x.details.reason === reason && x.actor === actor);
  }, 5000, `audit tunnel.refused ${reason} by ${actor}`);
  assert.equal(e.outcome, 'denied');
  assert.equal(e.targetType, 'session');
  assert.ok(!JSON.stringify(e).includes(ticket), 'the ticket is not in the audit trail');
  return e;
}

async function aliceWithTicket(): Promise<{ alice: ApiClient; session: string; ticket: string }> {
  const alice = await login(tb!, 'alice');
  const { session } = await liveSession(tb!, alice);
  return { alice, session, ticket: await connectTicket(alice, session) };
}

test("A's ticket with B's cookie is refused (and burnt); audited with B as the actor", async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { alice, session, ticket } = await aliceWithTicket();
  const bob = await login(tb!, 'bob');
  await refusedWith(open({ ticket, as: bob }), FORBIDDEN);
  const e = await audited('other_login', session, 'bob', ticket);
  assert.equal(e.details.ticketUser, 'alice');
  // Presented by the wrong login, the ticket is gone: not even Alice can use it now.
  await refusedWith(open({ ticket, as: alice }), UNAUTHORIZED);
});

test("A's ticket with no cookie is refused; audited as anonymous", async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { session, ticket } = await aliceWithTicket();
  await refusedWith(open({ ticket }), UNAUTHORIZED);
  await audited('no_login', session, 'anonymous', ticket);
});

test("A's ticket from A's other login (a second browser) or after A logged out is refused", async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { alice, session, ticket } = await aliceWithTicket();
  const alice2 = await login(tb!, 'alice');
  assert.notEqual(alice2.cookie, alice.cookie);
  await refusedWith(open({ ticket, as: alice2 }), FORBIDDEN);
  await audited('other_login', session, 'alice', ticket);
  const t2 = await connectTicket(alice, session);
  assert.equal((await alice.post('/auth/logout')).status, 204);
  await refusedWith(open({ ticket: t2, as: alice }), UNAUTHORIZED);
  await audited('no_login', session, 'anonymous', t2);
});

test("A's ticket with A's cookie from a foreign Origin, or with no Origin, is refused", async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { alice, session, ticket } = await aliceWithTicket();
  await refusedWith(open({ ticket, as: alice, origin: 'https://evil.example' }), FORBIDDEN);
  const e = await audited('foreign_origin', session, 'alice', ticket);
  assert.equal(e.details.origin, 'https://evil.example');
  // Same host, other port: another origin.
  const t2 = await connectTicket(alice, session);
  await refusedWith(open({ ticket: t2, as: alice, origin: 'http://127.0.0.1:1' }), FORBIDDEN);
  await audited('foreign_origin', session, 'alice', t2);
  // A browser always sends an Origin: a cookie without one is not a page we served.
  const t3 = await connectTicket(alice, session);
  await refusedWith(open({ ticket: t3, as: alice, origin: null }), FORBIDDEN);
  await audited('foreign_origin', session, 'alice', t3);
});

test('a ticket in the URL opens no connection and is burnt; audited', async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { alice, session, ticket } = await aliceWithTicket();
  // Even with the right login and Origin, and the ticket sent properly as well.
  await refusedWith(open({ query: `token=${ticket}`, ticket, as: alice }), UNAUTHORIZED);
  await audited('ticket_in_url', session, 'alice', ticket);
  await refusedWith(open({ ticket, as: alice }), UNAUTHORIZED);
  assert.equal(tb!.tunnel.count(), 0);
});

test("the right login from the broker's own origin (or a configured one) streams the desktop", async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { alice, session, ticket } = await aliceWithTicket();
  const c = open({ ticket, as: alice, query: 'width=320&height=200' });
  await streams(c);
  await until(async () => (await tb!.app.store.sessions.get(session))?.state === 'connected', 10_000, 'session connected');
  c.close();
  // A thin-client shell served from tunnel.allowedOrigins.
  const shell = open({ ticket: await connectTicket(alice, session), as: alice, origin: SHELL });
  await streams(shell);
  shell.close();
});

test("a helpdesk shadow ticket is bound to the helpdesk's login: another helpdesk's cookie or API key is refused", async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  await tb!.addUser('hank', 'helpdesk');
  const { alice, session, ticket } = await aliceWithTicket();
  const user = open({ ticket, as: alice });
  await streams(user);
  await until(async () => (await tb!.app.store.tickets.tunnel(session))?.guacConnection, 10_000, 'the live connection');
  const helen = await login(tb!, 'helen');
  const hank = await login(tb!, 'hank');
  const shadowTicket = async (c: ApiClient) => {
    const r = await c.post(`/sessions/${session}/shadow`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.ticket as string;
  };
  const s1 = await shadowTicket(helen);
  await refusedWith(open({ ticket: s1, as: hank }), FORBIDDEN);
  const e = await audited('other_login', session, 'hank', s1);
  assert.equal(e.details.kind, 'shadow');
  assert.equal(e.details.ticketUser, 'helen');
  const shadow = open({ ticket: await shadowTicket(helen), as: helen });
  await streams(shadow);
  shadow.close();
  // One helpdesk watches at a time (the user's notice names them): helen stops watching.
  assert.equal((await helen.del(`/sessions/${session}/shadow`)).status, 204);

  // API keys (scripts, thin-client shells): the same key redeems, without an Origin; another key or a cookie does not.
  const mk = async (name: string) => {
    const { key, token } = await tb!.app.identity.createApiKey(SYSTEM_ACTOR, { name, role: 'helpdesk' });
    return { id: key.id, token };
  };
  const k1 = await mk('desk-1');
  const k2 = await mk('desk-2');
  const api = (token: string) => ({ cookie: '', bearer: token });
  const viaKey = async () => {
    const c = await login(tb!, 'helen'); // then replaced by the key
    c.cookie = '';
    c.csrf = '';
    c.bearer = k1.token;
    return shadowTicket(c);
  };
  const s2 = await viaKey();
  await refusedWith(open({ ticket: s2, as: api(k2.token), origin: null }), FORBIDDEN);
  await audited('other_login', session, `apikey:${k2.id}`, s2);
  const s3 = await viaKey();
  await refusedWith(open({ ticket: s3, as: helen }), FORBIDDEN);
  await audited('other_login', session, 'helen', s3);
  const s4 = await viaKey();
  const byKey = open({ ticket: s4, as: api(k1.token), origin: null });
  await streams(byKey);
  byKey.close();
  user.close();
});
