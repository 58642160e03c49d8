// The live streams share one loop per replica (server/api/event-hub.ts): many helpdesk consoles
// and viewer message streams open on one broker cost one Redis read per topic per tick, not one
// per stream; a tunnel event on the replicas' pub/sub channel wakes the loop at once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, waitFor, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { login } from '../tunnel/support/fixtures.ts';
import { EventHub, eventHubOf } from '../../server/api/event-hub.ts';

let tb: TestBroker | undefined;
const aborts: AbortController[] = [];

after(async () => {
  for (const a of aborts) a.abort();
  await tb?.close();
});

/** Opens a stream and resolves once its first event of `type` arrived; it stays open. */
async function open(url: string, cookie: string, type: string): Promise<void> {
  const ac = new AbortController();
  aborts.push(ac);
  const res = await fetch(url, { headers: { cookie }, signal: ac.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let buf = '';
  while (!buf.includes(`event: ${type}`)) {
    const r = await reader.read();
    if (r.done) throw new Error('stream ended');
    buf += Buffer.from(r.value).toString();
  }
  // keep draining so the server's writes never block
  void (async () => {
    for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) break;
  })();
}

test('4 consoles and 3 message streams on one replica: one read per topic per tick, and a tunnel event wakes the loop', async () => {
  tb = await startTestBroker({ name: 'event-hub' });
  await tb.addUser('alice');
  await tb.addUser('helen', 'helpdesk');
  await tb.app.broker.pools.create(tb.pool({ name: 'p1', entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  await tb.readyDesktops('p1', 1);
  const alice = await login(tb, 'alice');
  const helen = await login(tb, 'helen');
  const r = await alice.post('/me/pools/p1/request');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const session = r.body.session.id as string;
  const hub = eventHubOf(tb.app.broker);

  for (let i = 0; i < 4; i++) await open(`${tb.url}/api/v1/events`, helen.cookie, 'snapshot');
  const m = await helen.post(`/sessions/${session}/message`, { title: 'Hi', text: 'maintenance at noon' });
  assert.equal(m.status, 200, JSON.stringify(m.body));
  for (let i = 0; i < 3; i++) await open(`${tb.url}/api/v1/me/sessions/${session}/messages`, alice.cookie, 'message');
  assert.deepEqual(hub.size, { topics: 2, streams: 7 });

  // A poll per stream would read 4/2 s + 3/1 s = 5 times a second; the shared loop reads the
  // snapshot every 2 s and the session every 1 s: 1.5 a second, whatever the number of streams.
  const r0 = hub.reads;
  const t0 = Date.now();
  await waitFor(async () => hub.reads - r0 >= 6, 15_000, 20);
  const took = Date.now() - t0;
  assert.ok(took >= 2500, `6 reads in ${took} ms: more than one loop is polling`);

  // The replicas' pub/sub channel wakes the loop: both topics are read at once after a tunnel event, not at their next ticks.
  await waitFor(async () => hub.reads - r0 >= 7, 5_000, 5);
  const r1 = hub.reads;
  const t1 = Date.now();
  await tb.app.store.tickets.publish({ type: 'disconnect', session });
  await waitFor(async () => hub.reads >= r1 + 2, 2000, 5);
  assert.ok(Date.now() - t1 < 400, `woken after ${Date.now() - t1} ms`);

  // Streams gone: topics dropped, the loop sleeps.
  for (const a of aborts) a.abort();
  await waitFor(async () => hub.size.streams === 0 && hub.size.topics === 0, 5000);
});

test('a wake while a topic is being read is not lost: the topic is read again as soon as that read ends', async () => {
  const hub = new EventHub();
  let release: () => void = () => undefined;
  let reads = 0;
  const read = () => {
    reads++;
    // The first read hangs until released (a slow Redis answer); later ones answer at once.
    return reads === 1 ? new Promise<number>((r) => (release = () => r(reads))) : Promise.resolve(reads);
  };
  const seen: number[] = [];
  const un = hub.subscribe('slow', 60_000, read, (r) => void (r.ok && seen.push(r.value as number)));
  try {
    await waitFor(async () => reads === 1, 2000, 5);
    hub.wake('slow'); // news arrives while the first read is under way
    release();
    await waitFor(async () => seen.length >= 2, 2000, 5);
    assert.deepEqual(seen, [1, 2], 'read again at once, not at the next tick a minute later');
  } finally {
    un();
    await hub.close();
  }
});
