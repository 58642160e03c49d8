// The hard quota across broker replicas, with real folders, real Redis and real HTTP: parallel
// uploads (with and without Content-Length) through two replicas sharing one Redis and one share
// never store more than the limit; shutdown mid-upload and a broker that died mid-upload leave
// no temp file that counts; usage is the count kept in Redis, walked again after an interval.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestBroker, ApiClient, waitFor, type TestBroker, type HttpResult } from '../support/harness.ts';
import { uniquePrefix, dropPrefix, freePort, SHARED_REDIS_URL } from '../support/redis.ts';
import { startBrokerProcess } from '../support/process.ts';

const MiB = 1024 * 1024;
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A share root of the test's own, removed at the end. */
function shareRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vdi-quota-'));
  cleanups.push(() => fs.rmSync(root, { recursive: true, force: true }));
  return root;
}

function sharesConfig(root: string, extra: Record<string, unknown> = {}) {
  return { shares: { list: [{ name: 'home', root, unc: '', guacdPath: '', createRoot: false }], quota: { softBytes: MiB, hardBytes: 3 * MiB }, maxUploadBytes: 8 * MiB, healthCacheMs: 0, ...extra } } as never;
}

/** A broker on `prefix` over `root`; brokers on the same prefix and root are replicas of one. */
async function broker(name: string, prefix: string, root: string, extra: Record<string, unknown> = {}): Promise<TestBroker> {
  const tb = await startTestBroker({ name, prefix, keepKeys: true, config: sharesConfig(root, extra) });
  cleanups.push(async () => {
    await tb.close();
    await dropPrefix(SHARED_REDIS_URL, prefix);
  });
  return tb;
}

async function loggedIn(tb: TestBroker, user: string): Promise<ApiClient> {
  const c = new ApiClient(tb.url);
  assert.equal((await c.login(user)).status, 200);
  return c;
}

/** A slow client's body: 256 KiB, then nothing more until the request is cut (or `release`). */
function stalledBody(): { body: ReadableStream<Uint8Array>; release: () => void } {
  let sent = 0;
  let release: () => void = () => undefined;
  const stalled = new Promise<void>((r) => (release = r));
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (sent >= 256 * 1024) {
        await stalled;
        return c.close();
      }
      sent += 64 * 1024;
      c.enqueue(new Uint8Array(64 * 1024).fill(2));
    },
    cancel() {
      release();
    },
  });
  return { body, release };
}

/** A body of `total` bytes sent in 64 KiB pieces as a stream: no Content-Length (chunked). */
function chunked(total: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (sent >= total) return c.close();
      const n = Math.min(64 * 1024, total - sent);
      sent += n;
      c.enqueue(new Uint8Array(n).fill(120));
      await new Promise((r) => setImmediate(r));
    },
  });
}

async function upload(c: ApiClient, p: string, body: Uint8Array | ReadableStream<Uint8Array>): Promise<HttpResult> {
  const init: RequestInit & { duplex?: 'half' } = { method: 'PUT', headers: { cookie: c.cookie, 'x-csrf-token': c.csrf, 'content-type': 'application/octet-stream' }, body: body as BodyInit };
  if (body instanceof ReadableStream) init.duplex = 'half';
  const res = await fetch(`${c.base}/api/v1/me/files/content?path=${encodeURIComponent(p)}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // raw
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Bytes of the user's real files (the broker's own names aside) and the temp files left. */
function folder(dir: string): { stored: number; temps: string[] } {
  let stored = 0;
  const temps: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.name.startsWith('.vdi-upload-')) temps.push(path.relative(dir, p));
      else if (e.isDirectory()) walk(p);
      else stored += fs.lstatSync(p).size;
    }
  };
  walk(dir);
  return { stored, temps };
}

/** Four parallel 2 MiB uploads, two through each replica, into a 3 MiB hard quota. */
async function parallelUploads(user: string, body: () => Uint8Array | ReadableStream<Uint8Array>): Promise<void> {
  const prefix = uniquePrefix(`quota-${user}`);
  const root = shareRoot();
  const a = await broker(`${user}-a`, prefix, root);
  const b = await broker(`${user}-b`, prefix, root);
  await a.addUser(user);
  const [ca, cb] = [await loggedIn(a, user), await loggedIn(b, user)];
  const results = await Promise.all([ca, cb, ca, cb].map((c, i) => upload(c, `f${i}.bin`, body())));

  const statuses = results.map((r) => r.status);
  assert.ok(statuses.every((s) => s === 201 || s === 507), JSON.stringify(results.map((r) => [r.status, r.body])));
  for (const r of results.filter((x) => x.status === 507)) assert.equal(r.body.error.code, 'quota_exceeded');
  assert.ok(statuses.includes(201), 'an upload that fits is stored');
  const f = folder(path.join(root, user));
  assert.ok(f.stored <= 3 * MiB, `stored ${f.stored} bytes, over the 3 MiB hard quota (${statuses})`);
  assert.equal(f.stored, statuses.filter((s) => s === 201).length * 2 * MiB);
  assert.deepEqual(f.temps, [], 'no temp files remain');
  // The kept count is the real one on both replicas, and nothing stays reserved.
  for (const c of [ca, cb]) assert.equal((await c.get('/me/files/usage')).body.usage.usedBytes, f.stored);
  assert.equal(await a.app.store.quota.reservedBytes('home', user), 0);
}

test('parallel uploads with Content-Length through two replicas never pass the hard quota; the refused get 507', async () => {
  await parallelUploads('ann', () => new Uint8Array(2 * MiB).fill(97));
});

test('parallel chunked uploads (no Content-Length) through two replicas never pass the hard quota; the refused get 507', async () => {
  await parallelUploads('ben', () => chunked(2 * MiB));
});

test('a reservation never settled (its broker died) expires by itself', async () => {
  const prefix = uniquePrefix('quota-expiry');
  const tb = await broker('expiry', prefix, shareRoot());
  const q = tb.app.store.quota;
  await q.recount('home', 'zed', { usedBytes: MiB, files: 1, countedAt: Date.now(), genSeen: 0 });
  const ask = (id: string, need: number) => q.reserve('home', 'zed', id, { needBytes: need, wantBytes: need, hardBytes: 3 * MiB, ttlMs: 300 });
  assert.equal((await ask('dead', 2 * MiB)).granted, true);
  assert.equal((await ask('next', 1)).granted, false, 'the room is held');
  await waitFor(async () => (await ask('next', 2 * MiB)).granted, 5000, 50);
});

test('broker closed while an upload streams: the client is told, no temp file remains, usage is right', async () => {
  const prefix = uniquePrefix('quota-close');
  const root = shareRoot();
  const tb = await broker('close', prefix, root);
  await tb.addUser('cat');
  const cat = await loggedIn(tb, 'cat');
  assert.equal((await upload(cat, 'kept.bin', new Uint8Array(MiB).fill(1))).status, 201);
  const { body, release } = stalledBody();
  const answer = upload(cat, 'cut.bin', body).then((r) => r.status, (e: Error) => e.message);
  const home = path.join(root, 'cat');
  await waitFor(async () => folder(home).temps.some((t) => fs.statSync(path.join(home, t)).size > 0));

  await tb.app.close(); // what the runtime calls at shutdown, before the process exits
  assert.deepEqual(folder(home).temps, [], 'the temp file is removed when the broker closes');
  assert.equal(folder(home).stored, MiB);
  const status = await Promise.race([answer, new Promise((r) => setTimeout(() => r('pending'), 5000).unref())]);
  release();
  assert.ok(status === 503 || (typeof status === 'string' && status !== 'pending'), `the client got ${status}`);

  // Another replica: the count is the real one and the cut upload holds no room.
  const next = await broker('close-2', prefix, root);
  const again = await loggedIn(next, 'cat');
  assert.equal((await again.get('/me/files/usage')).body.usage.usedBytes, MiB);
  assert.equal(await next.app.store.quota.reservedBytes('home', 'cat'), 0);
  assert.equal((await upload(again, 'fits.bin', new Uint8Array(2 * MiB).fill(3))).status, 201, 'the whole free room is usable');
});

test('upload temp files left by a dead broker are removed at start and do not count; live ones stay', async () => {
  const prefix = uniquePrefix('quota-sweep');
  const root = shareRoot();
  const hour = Date.now() / 1000 - 3600;
  fs.mkdirSync(path.join(root, 'dan', 'docs'), { recursive: true });
  fs.writeFileSync(path.join(root, 'dan', 'keep.txt'), 'k'.repeat(100));
  for (const stale of ['.vdi-upload-0a1b2c3d4e5f', 'docs/.vdi-upload-legacy']) {
    fs.writeFileSync(path.join(root, 'dan', stale), Buffer.alloc(512 * 1024));
    fs.utimesSync(path.join(root, 'dan', stale), hour, hour);
  }
  fs.mkdirSync(path.join(root, 'eve'));
  fs.writeFileSync(path.join(root, 'eve', '.vdi-upload-live'), Buffer.alloc(1000)); // another replica's upload in progress

  const tb = await broker('sweep', prefix, root);
  await waitFor(async () => !fs.existsSync(path.join(root, 'dan', '.vdi-upload-0a1b2c3d4e5f')), 5000);
  assert.ok(fs.existsSync(path.join(root, 'eve', '.vdi-upload-live')), 'a fresh temp file is not touched');
  await tb.addUser('dan');
  const dan = await loggedIn(tb, 'dan');
  const u = (await dan.get('/me/files/usage')).body.usage;
  assert.deepEqual([u.usedBytes, u.files], [100, 1], 'only the real file counts');
  assert.deepEqual(folder(path.join(root, 'dan')).temps, [], 'old temp files deeper in the folder go at the recount');
});

test('usage is the count kept in Redis: API writes count at once, writes behind the broker\'s back after the recount interval', async () => {
  const prefix = uniquePrefix('quota-recount');
  const root = shareRoot();
  const tb = await broker('recount', prefix, root, { usageRecountMs: 3000 });
  await tb.addUser('fay');
  const fay = await loggedIn(tb, 'fay');
  const used = async () => (await fay.get('/me/files/usage')).body.usage.usedBytes as number;
  assert.equal(await used(), 0); // first use: the folder is walked
  assert.equal((await upload(fay, 'a.bin', new Uint8Array(100))).status, 201);
  assert.equal((await fay.post('/me/files/folder?path=d')).status, 201);
  assert.equal((await upload(fay, 'd/b.bin', new Uint8Array(30))).status, 201);
  assert.equal(await used(), 130);
  fs.writeFileSync(path.join(root, 'fay', 'guest.txt'), 'g'.repeat(50)); // the guest, over SMB/9p
  assert.equal(await used(), 130, 'not walked again on every call');
  assert.equal((await fay.del('/me/files?path=d&recursive=true')).status, 204);
  assert.equal(await used(), 100, 'a delete counts at once');
  await waitFor(async () => (await used()) === 150, 10_000, 100);
});

test('SIGTERM to the broker process while an upload streams: it exits 0 with no temp file left and nothing reserved', async () => {
  const prefix = uniquePrefix('quota-sigterm');
  const root = shareRoot();
  const admin = await broker('sigterm-admin', prefix, root);
  await admin.addUser('gus');
  const port = await freePort();
  const child = await startBrokerProcess('test/support/broker-process.ts', {
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(port), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix,
    VDI_AUTH_ARGON2_MEMORY_KIB: '1024', VDI_AUTH_ARGON2_TIME_COST: '1', VDI_LOGGING_LEVEL: 'warn', VDI_JOBS_ENABLED: 'false',
    VDI_SERVER_SHUTDOWN_GRACE_SECONDS: '1', VDI_SHARES_LIST: JSON.stringify([{ name: 'home', root, unc: '', guacdPath: '', createRoot: false }]),
  });
  cleanups.push(async () => void (await child.kill('SIGKILL')));
  const gus = new ApiClient(child.url);
  assert.equal((await gus.login('gus')).status, 200);
  const { body, release } = stalledBody();
  const answer = upload(gus, 'cut.bin', body).then((r) => r.status, (e: Error) => e.message);
  const home = path.join(root, 'gus');
  await waitFor(async () => fs.existsSync(home) && folder(home).temps.length > 0);

  const code = await child.kill('SIGTERM');
  release();
  assert.equal(code, 0, child.output());
  assert.deepEqual(folder(home).temps, [], 'the temp file is removed before the process exits');
  assert.equal(folder(home).stored, 0);
  assert.equal(await admin.app.store.quota.reservedBytes('home', 'gus'), 0, 'the reservation is released');
  assert.notEqual(await answer, 201);
});
