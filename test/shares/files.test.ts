// The files API against a real folder on disk: every endpoint refuses hostile paths with
// bad_path and touches nothing; quotas stop uploads (declared and streamed); a share that
// cannot be written stops desktop requests with share_unavailable and alerts the helpdesk.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestBroker, ApiClient, type TestBroker, type HttpResult } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { folderName, splitUserPath } from '../../server/shares/index.ts';

let tb: TestBroker;
let root: string;
let alice: ApiClient;
let helpdesk: ApiClient;

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'vdi-shares-'));
  const share = path.join(root, 'home');
  fs.mkdirSync(share);
  tb = await startTestBroker({
    name: 'shares',
    config: { shares: { list: [{ name: 'home', root: share, unc: '\\\\files\\home\\{username}', guacdPath: '', createRoot: false }], quota: { softBytes: 500, hardBytes: 1000 }, maxUploadBytes: 800, healthCacheMs: 0 } as never },
  });
  await tb.addUser('alice');
  await tb.addUser('bob');
  await tb.addUser('desk', 'helpdesk');
  alice = new ApiClient(tb.url);
  assert.equal((await alice.login('alice')).status, 200);
  helpdesk = new ApiClient(tb.url);
  assert.equal((await helpdesk.login('desk')).status, 200);
});

after(async () => {
  await tb?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

async function upload(c: ApiClient, p: string, body: BodyInit, extra = ''): Promise<HttpResult> {
  const init: RequestInit & { duplex?: 'half' } = { method: 'PUT', headers: { cookie: c.cookie, 'x-csrf-token': c.csrf, 'content-type': 'application/octet-stream' }, body };
  if (body instanceof ReadableStream) init.duplex = 'half';
  const res = await fetch(`${tb.url}/api/v1/me/files/content?path=${encodeURIComponent(p)}${extra}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // raw
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Every name, type, size and mtime under the share root. */
function tree(dir = path.join(root, 'home'), rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    const st = fs.lstatSync(p);
    out.push(`${rel}${e.name} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs}`);
    if (e.isDirectory()) out.push(...tree(p, `${rel}${e.name}/`));
  }
  return out.sort();
}

test('folder names are safe and injective', () => {
  assert.equal(folderName('alice'), 'alice');
  assert.equal(folderName('a.b-c_d'), 'a.b-c_d');
  for (const id of ['..', '.', 'a/b', 'Alice', 'con', 'nul.txt', 'a..b', 'a.', '', 'x\u0000']) {
    if (id === '') {
      assert.throws(() => folderName(id));
      continue;
    }
    const n = folderName(id);
    assert.match(n, /^~[0-9a-f]+$/, id);
  }
  assert.notEqual(folderName('Alice'), folderName('alice'));
  assert.throws(() => splitUserPath('../x'), { code: 'bad_path' });
});

test('my files: folder made on first use (0700), list, upload, download, rename, folder, delete, usage', async () => {
  const r0 = await alice.get('/me/files');
  assert.equal(r0.status, 200, JSON.stringify(r0.body));
  assert.deepEqual(r0.body.entries, []);
  const home = path.join(root, 'home', 'alice');
  assert.equal(fs.statSync(home).mode & 0o777, 0o700);
  assert.equal(fs.statSync(home).uid, process.getuid!());

  const up = await upload(alice, 'hello.txt', 'hello world');
  assert.equal(up.status, 201, JSON.stringify(up.body));
  assert.deepEqual(up.body.file, { path: 'hello.txt', sizeBytes: 11, created: true });
  assert.equal((await upload(alice, 'hello.txt', 'again')).body.error.code, 'already_exists');
  assert.equal((await upload(alice, 'hello.txt', 'hello world!', '&overwrite=true')).status, 201);
  const down = await fetch(`${tb.url}/api/v1/me/files/content?path=hello.txt`, { headers: { cookie: alice.cookie } });
  assert.equal(down.status, 200);
  assert.equal(await down.text(), 'hello world!');
  assert.match(down.headers.get('content-disposition') ?? '', /attachment; filename="hello.txt"/);

  assert.equal((await alice.post('/me/files/folder?path=docs')).status, 201);
  assert.equal((await alice.post('/me/files/rename?path=hello.txt&to=docs%2Fh%C3%A9llo.txt')).status, 200);
  const list = await alice.get('/me/files?path=docs');
  assert.deepEqual(list.body.entries.map((e: { name: string; type: string; sizeBytes: number }) => [e.name, e.type, e.sizeBytes]), [['héllo.txt', 'file', 12]]);
  assert.equal((await alice.del('/me/files?path=docs')).body.error.code, 'conflict');
  const usage = await alice.get('/me/files/usage');
  assert.equal(usage.status, 200);
  assert.equal(usage.body.usage.usedBytes, 12);
  assert.equal(usage.body.usage.hardBytes, 1000);
  assert.equal((await alice.del('/me/files?path=docs&recursive=true')).status, 204);
  assert.deepEqual((await alice.get('/me/files')).body.entries, []);

  // the helpdesk sees a user's usage and the shares' health; a user may not
  assert.equal((await alice.get('/users/alice/files/usage')).status, 403);
  const hu = await helpdesk.get('/users/alice/files/usage');
  assert.equal(hu.status, 200);
  assert.equal(hu.body.usage[0].share, 'home');
  assert.equal((await helpdesk.get('/users/nobody/files/usage')).status, 404);
  const sh = await helpdesk.get('/shares');
  assert.equal(sh.status, 200);
  assert.equal(sh.body.shares[0].health.ok, true);
  assert.equal(sh.body.shares[0].unc, '\\\\files\\home\\{username}');
});

test('hostile paths on every files endpoint: 400 bad_path, nothing touched', async () => {
  const home = path.join(root, 'home', 'alice');
  fs.writeFileSync(path.join(home, 'keep.txt'), 'keep');
  fs.mkdirSync(path.join(home, 'docs'), { recursive: true });
  fs.mkdirSync(path.join(root, 'home', 'bob'), { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(root, 'home', 'bob', 'secret.txt'), 'bob only');
  fs.symlinkSync('/etc', path.join(home, 'out'));
  fs.symlinkSync('../bob', path.join(home, 'bobs'));
  fs.symlinkSync('docs', path.join(home, 'inner'));
  const before = tree();

  const hostile = [
    '..', '../bob/secret.txt', 'docs/../../bob/secret.txt', '/etc/passwd', '/', 'a\u0000b', 'keep.txt\u0000.png', 'out', 'out/passwd',
    'bobs/secret.txt', 'inner/x', 'docs/../keep.txt', './keep.txt', 'docs//x', 'docs/', 'a\\..\\b', 'C:/Windows', 'x'.repeat(256),
    `${'d/'.repeat(40)}x`, 'é'.repeat(200), 'bad\u0007name', 'a|b', '.vdi-upload-x', 'trailing.', 'keep.txt/x',
  ];
  const enc = encodeURIComponent;
  const problems: string[] = [];
  const expect = (r: HttpResult, what: string) => {
    if (r.status !== 400 || r.body?.error?.code !== 'bad_path') problems.push(`${what} -> ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
  };
  for (const h of hostile) {
    expect(await alice.get(`/me/files?path=${enc(h)}`), `list ${JSON.stringify(h)}`);
    expect(await alice.get(`/me/files/content?path=${enc(h)}`), `download ${JSON.stringify(h)}`);
    expect(await upload(alice, h, 'pwned', '&overwrite=true'), `upload ${JSON.stringify(h)}`);
    expect(await alice.post(`/me/files/folder?path=${enc(h)}`), `mkdir ${JSON.stringify(h)}`);
    expect(await alice.post(`/me/files/rename?path=${enc(h)}&to=moved.txt`), `rename from ${JSON.stringify(h)}`);
    expect(await alice.post(`/me/files/rename?path=keep.txt&to=${enc(h)}`), `rename to ${JSON.stringify(h)}`);
    expect(await alice.del(`/me/files?path=${enc(h)}&recursive=true`), `delete ${JSON.stringify(h)}`);
  }
  // the empty path is my folder for a listing, and refused everywhere else
  for (const r of [await alice.get('/me/files/content?path='), await alice.post('/me/files/folder?path='), await alice.del('/me/files?path=&recursive=true'), await upload(alice, '', 'x')]) expect(r, 'empty path');
  assert.deepEqual(problems, []);
  assert.deepEqual(tree(), before, 'a hostile request changed the share');
  assert.equal(fs.readFileSync(path.join(root, 'home', 'bob', 'secret.txt'), 'utf8'), 'bob only');
  for (const l of ['out', 'bobs', 'inner']) fs.unlinkSync(path.join(home, l));
});

test('quota: soft flagged, hard refuses uploads (declared or streamed) and leaves nothing; size limit 413', async () => {
  const home = path.join(root, 'home', 'alice');
  for (const f of fs.readdirSync(home)) fs.rmSync(path.join(home, f), { recursive: true, force: true });
  assert.equal((await upload(alice, 'a.bin', 'x'.repeat(600))).status, 201);
  const u = (await alice.get('/me/files/usage')).body.usage;
  assert.equal(u.usedBytes, 600);
  assert.equal(u.overSoft, true);
  assert.equal(u.overHard, false);

  const declared = await upload(alice, 'b.bin', 'y'.repeat(500));
  assert.equal(declared.status, 507);
  assert.equal(declared.body.error.code, 'quota_exceeded');
  // streamed without a length: stopped when it passes the quota
  const chunks = (n: number, size: number) => new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < n; i++) c.enqueue(new TextEncoder().encode('z'.repeat(size)));
      c.close();
    },
  });
  const streamed = await upload(alice, 'c.bin', chunks(5, 100));
  assert.equal(streamed.status, 507, JSON.stringify(streamed.body));
  assert.equal(streamed.body.error.code, 'quota_exceeded');
  // replacing a file counts only the difference
  assert.equal((await upload(alice, 'a.bin', 'x'.repeat(700), '&overwrite=true')).status, 201);
  // the per-upload limit (800) beyond the quota check
  assert.equal((await alice.del('/me/files?path=a.bin')).status, 204);
  const big = await upload(alice, 'd.bin', chunks(9, 100));
  assert.equal(big.status, 413, JSON.stringify(big.body));
  assert.equal(big.body.error.code, 'payload_too_large');
  assert.deepEqual(fs.readdirSync(home), [], 'no partial or temp files left');
});

test('share not writable: desktop request gets share_unavailable, no desktop is handed out, the helpdesk is alerted', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'sp', entitlements: { users: ['bob'], groups: [] } }), SYSTEM_ACTOR);
  const r = await tb.app.store.desktops.provisionSpare('sp', Date.now());
  assert.ok('id' in r);
  await tb.app.store.desktops.transition(r.id, 'settled', { expect: ['provisioning'] });
  const bob = new ApiClient(tb.url);
  assert.equal((await bob.login('bob')).status, 200);

  const share = path.join(root, 'home');
  const aside = path.join(root, 'home.aside');
  fs.renameSync(share, aside);
  fs.writeFileSync(share, 'not a folder'); // the mount point replaced by a file
  try {
    const req = await bob.post('/me/pools/sp/request');
    assert.equal(req.status, 503, JSON.stringify(req.body));
    assert.equal(req.body.error.code, 'share_unavailable');
    assert.ok(req.headers.get('retry-after'));
    assert.equal((await tb.app.store.desktops.get(r.id))!.state, 'ready', 'the desktop stays in the pool');
    assert.equal((await bob.get('/me/sessions')).body.sessions.length, 0);
    // files too
    assert.equal((await bob.get('/me/files')).body.error.code, 'share_unavailable');

    const audit = await helpdesk.get('/audit?limit=20');
    const alert = audit.body.entries.find((e: { action: string }) => e.action === 'share.unavailable');
    assert.ok(alert, JSON.stringify(audit.body.entries.map((e: { action: string }) => e.action)));
    assert.equal(alert.outcome, 'failed');
    assert.equal(alert.target, 'home');
    const shares = await helpdesk.get('/shares');
    assert.equal(shares.body.shares[0].health.ok, false);
    assert.match(shares.body.shares[0].health.lastError, /not a directory/);
    const m = await tb.app.metrics.registry.metrics();
    assert.match(m, /vdi_share_up\{share="home"\} 0/);
    assert.match(m, /vdi_share_failures_total\{share="home"\} [1-9]/);
  } finally {
    fs.rmSync(share, { force: true });
    fs.renameSync(aside, share);
  }
  const ok = await bob.post('/me/pools/sp/request');
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.ok(fs.statSync(path.join(share, 'bob')).isDirectory());
  assert.equal((await helpdesk.get('/shares')).body.shares[0].health.ok, true);

  // An outage does not lock a user out of the live session they already have.
  fs.renameSync(share, aside);
  fs.writeFileSync(share, 'not a folder');
  try {
    const again = await bob.post('/me/pools/sp/request');
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.outcome, 'existing');
    assert.equal(again.body.session.id, ok.body.session.id);
  } finally {
    fs.rmSync(share, { force: true });
    fs.renameSync(aside, share);
  }
});

test('a pool naming a share that is not configured: share_unavailable and an alert, never a desktop', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'np', share: 'nope', entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  const r = await tb.app.store.desktops.provisionSpare('np', Date.now());
  assert.ok('id' in r);
  await tb.app.store.desktops.transition(r.id, 'settled', { expect: ['provisioning'] });
  const req = await alice.post('/me/pools/np/request');
  assert.equal(req.status, 503);
  assert.equal(req.body.error.code, 'share_unavailable');
  assert.equal((await tb.app.store.desktops.get(r.id))!.state, 'ready');
  const audit = await helpdesk.get('/audit?limit=5');
  assert.ok(audit.body.entries.some((e: { action: string; target: string; outcome: string }) => e.action === 'share.unavailable' && e.target === 'nope' && e.outcome === 'failed'));
});
