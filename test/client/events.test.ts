// GET /api/v1/events: the helpdesk console's live updates (server-sent events). A snapshot
// at once, another when something changes, heartbeats otherwise; helpdesk only; `limit` ends
// the stream; a closed client stops the server's loop.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { login } from '../tunnel/support/fixtures.ts';

let tb: TestBroker;

before(async () => {
  tb = await startTestBroker({ name: 'events' });
  await tb.addUser('alice');
  await tb.addUser('helen', 'helpdesk');
  await tb.addUser('ada', 'admin');
  await tb.app.broker.pools.create(tb.pool({ name: 'p1', entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
});

after(async () => {
  await tb.close();
});

/** Reads server-sent events from a fetch body until `n` events of `type` arrived (bounded). */
async function readEvents(res: Response, type: string, n: number, timeoutMs: number, onEvent?: (data: any) => Promise<void>): Promise<any[]> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const out: any[] = [];
  const deadline = Date.now() + timeoutMs;
  try {
    while (out.length < n && Date.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const r = await Promise.race([reader.read(), new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), Math.max(1, deadline - Date.now()))))]);
      clearTimeout(timer);
      if (!r || r.done) break;
      buf += dec.decode(r.value, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (ev === type && data) {
          const parsed = JSON.parse(data);
          out.push(parsed);
          await onEvent?.(parsed);
        }
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return out;
}

test('a helpdesk agent gets a snapshot at once and another when a pool changes', async () => {
  const helen = await login(tb, 'helen');
  const abort = new AbortController();
  const res = await fetch(`${tb.url}/api/v1/events`, { headers: { cookie: helen.cookie, accept: 'text/event-stream' }, signal: abort.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const ada = await login(tb, 'ada');
  let changed = false;
  const events = await readEvents(res, 'snapshot', 2, 15_000, async () => {
    if (changed) return;
    changed = true;
    assert.equal((await ada.post('/pools/p1/resize', { min: 0, max: 7, spare: 0 })).status, 200);
  });
  abort.abort();
  assert.equal(events.length, 2);
  assert.deepEqual(events[0].pools.map((p: { name: string }) => p.name), ['p1']);
  assert.equal(events[0].pools[0].size.max, 10);
  assert.equal(events[1].pools[0].size.max, 7);
  assert.ok(Array.isArray(events[1].sessions));
});

test('limit ends the stream; users are refused; nobody logged in is refused', async () => {
  const helen = await login(tb, 'helen');
  const t0 = Date.now();
  const r = await helen.get('/events?limit=1');
  assert.equal(r.status, 200);
  assert.ok(Date.now() - t0 < 5000);
  assert.match(String(r.body), /event: snapshot/);
  const alice = await login(tb, 'alice');
  const denied = await alice.get('/events');
  assert.equal(denied.status, 403);
  assert.equal(denied.body.error.code, 'forbidden');
  assert.equal((await fetch(`${tb.url}/api/v1/events`)).status, 401);
  assert.equal((await helen.get('/events?limit=0')).status, 400);
});

test('a stopping broker ends its event streams at once (they do not hold the shutdown)', async () => {
  const helen = await login(tb, 'helen');
  const res = await fetch(`${tb.url}/api/v1/events`, { headers: { cookie: helen.cookie } });
  assert.equal(res.status, 200);
  const ended = res.text();
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  const closed = new Promise<void>((r) => tb.server.close(() => r()));
  tb.server.closeIdleConnections();
  await closed;
  assert.match(await ended, /event: snapshot/);
  assert.ok(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms`);
});
