// A test broker streaming to a given guacd (a FakeGuacd, or the built-in gateway), with users,
// a pool and helpers that make a live session and ask for tickets through the real API.
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, type TestBroker } from '../../support/harness.ts';
import { SYSTEM_ACTOR } from '../../../server/broker/index.ts';
import type { ConsoleEndpoint } from '../../../server/providers/index.ts';

export const CONSOLE_PASSWORD = 'pässwörd';

type Over = NonNullable<Parameters<typeof startTestBroker>[0]>['config'];

export async function streamingBroker(name: string, config: Over = {}, console: ConsoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: 5999, password: CONSOLE_PASSWORD }): Promise<TestBroker> {
  const tb = await startTestBroker({ name, config });
  tb.provider.consoleEndpoint = console;
  for (const u of ['alice', 'bob']) await tb.addUser(u);
  await tb.addUser('helen', 'helpdesk');
  await tb.app.broker.pools.create(tb.pool({ name: 'p1', size: { min: 0, max: 50, spare: 0 }, entitlements: { users: ['alice', 'bob'], groups: [] } }), SYSTEM_ACTOR);
  return tb;
}

export async function login(tb: TestBroker, user: string): Promise<ApiClient> {
  const c = new ApiClient(tb.url);
  assert.equal((await c.login(user)).status, 200);
  return c;
}

/** A ready desktop is made and `client`'s user gets it: their live session id. */
export async function liveSession(tb: TestBroker, client: ApiClient): Promise<{ session: string; desktop: string }> {
  // A fresh session each time: the user's earlier ones are logged off first.
  for (const s of (await client.get('/me/sessions')).body.sessions as { id: string }[]) await client.post(`/me/sessions/${s.id}/logoff`);
  const r = await tb.app.store.desktops.provisionSpare('p1', Date.now());
  assert.ok('id' in r, JSON.stringify(r));
  const t = await tb.app.store.desktops.transition(r.id, 'settled', { expect: ['provisioning'] });
  assert.ok(t.ok);
  const got = await client.post('/me/pools/p1/request');
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assert.equal(got.body.outcome, 'assigned');
  return { session: got.body.session.id, desktop: got.body.desktop.id };
}

export async function connectTicket(client: ApiClient, session: string): Promise<string> {
  const r = await client.post(`/me/sessions/${session}/connect`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.ticket as string;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` (bounded) until it returns a truthy value. */
export async function until<T>(fn: () => Promise<T> | T, timeoutMs = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await sleep(25);
  }
}
