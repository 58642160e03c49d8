// test-lane: light (Xvnc, Chromium, broker processes, haproxy)
// The web viewer (client/dist in headless Chromium) against three broker replicas (real
// processes, one Redis) behind a real haproxy, each streaming one real X desktop (Xvnc with a VNC
// password) through its own built-in gateway: the user logs in through haproxy and launches the
// desktop; the test SIGKILLs the replica carrying that tunnel; the viewer, untouched, shows
// "connected" again within 5 s, drawing the same desktop's pixels, through another replica;
// session and desktop are the same and no second desktop was assigned. Screenshots go to
// $VDI_TEST_ARTIFACTS (default /tmp/vdi-artifacts). Everything is stopped by pid, also on failure.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startTestBroker, waitFor, type TestBroker } from '../support/harness.ts';
import { uniquePrefix, SHARED_REDIS_URL, dropPrefix } from '../support/redis.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { hasXvnc, startXvnc, type Xvnc } from '../gateway/support/xvnc.ts';
import { launchChromium, webClientMissing, type LaunchedChromium } from '../support/chromium.ts';
import { formLogin } from '../client/support/desk.ts';
import { startReplicaSet, type ReplicaSet } from './support/replica-set.ts';

const ARTIFACTS = process.env.VDI_TEST_ARTIFACTS || '/tmp/vdi-artifacts';
const missing = webClientMissing() ?? (hasXvnc() ? null : 'Xvnc/xsetroot/vncpasswd not installed');
const prefix = uniquePrefix('replicas-viewer');
const dir = mkdtempSync(join(tmpdir(), 'vdi-replicas-viewer-'));
const CONFIG = join(dir, 'broker.yaml');
writeFileSync(CONFIG, 'auth:\n  mfa:\n    requiredFor: { roles: [], groups: [] }\n');
const [W, H] = [640, 400];
const GREEN = [0x2a, 0x7f, 0x3c];
const PURPLE = [0x8f, 0x3c, 0x6e];

let admin: TestBroker | undefined;
let xvnc: Xvnc | undefined;
let set: ReplicaSet | undefined;
let chrome: LaunchedChromium<Browser> | undefined;
let ctx: BrowserContext | undefined;

after(async () => {
  await ctx?.close().catch(() => undefined);
  await chrome?.stop();
  await set?.close();
  await admin?.close();
  await xvnc?.stop();
  await dropPrefix(SHARED_REDIS_URL, prefix);
  rmSync(dir, { recursive: true, force: true });
});

/** Records every change of the viewer's phase (its `conn-<phase>` class) and label, with the time, in the page. */
const PHASES = `(() => {
  const log = (window.__phases ??= []);
  const read = () => {
    const el = document.querySelector('[data-testid=conn-state]');
    const phase = [...(el?.classList ?? [])].find((c) => c.startsWith('conn-'))?.slice(5) ?? '';
    return { phase, text: el?.textContent ?? '' };
  };
  if (!window.__phaseTimer) window.__phaseTimer = setInterval(() => {
    const now = read();
    const last = log.at(-1);
    if (last?.phase !== now.phase || last?.text !== now.text) log.push({ ...now, at: Date.now() });
  }, 20);
})()`;
type PhaseChange = { phase: string; text: string; at: number };

/** The desktop's pixel at its centre, from the viewer's display canvas (the default layer: the first one holding W×H; guacamole-common-js rounds canvas sizes up). */
const centrePixel = (p: Page) => p.evaluate<number[] | null>(`(() => {
  const c = [...document.querySelectorAll('.screen canvas')].find((c) => c.width >= ${W} && c.height >= ${H});
  if (!c) return null;
  return [...c.getContext('2d').getImageData(${W / 2}, ${H / 2}, 1, 1).data].slice(0, 3);
})()`);
const near = (a: number[] | null, b: number[]) => !!a && a.every((v, i) => Math.abs(v - b[i]!) <= 3);

test('web viewer through haproxy: SIGKILL of the replica carrying its tunnel: it shows "connected" again by itself within 5 s with the same desktop\'s pixels, through another replica; same session and desktop, no second desktop assigned', { timeout: 240_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  mkdirSync(ARTIFACTS, { recursive: true });
  xvnc = await startXvnc({ width: W, height: H, password: 'secret' });
  await xvnc.x('xsetroot', '-solid', '#2a7f3c');
  admin = await startTestBroker({ name: 'replicas-viewer-admin', prefix, keepKeys: true });
  await admin.addUser('alice');
  // Two ready desktops: a reconnect that asked for a desktop again could get the other one.
  await admin.app.broker.pools.create(admin.pool({ name: 'rp', size: { min: 0, max: 2, spare: 0 }, entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  await admin.readyDesktops('rp', 2);
  const store = admin.app.store;
  set = await startReplicaSet({ dir, prefix, configFile: CONFIG, vms: admin.provider.vms, console: { protocol: 'vnc', host: '127.0.0.1', port: xvnc.port, password: 'secret' } });
  await set.allUp();
  chrome = await launchChromium<Browser>();
  ctx = await chrome.browser.newContext({ viewport: { width: 1100, height: 720 } });
  const p = await ctx.newPage();
  const tunnelsOpened: string[] = [];
  p.on('websocket', (ws) => void (ws.url().includes('/api/v1/tunnel') && tunnelsOpened.push(ws.url())));

  // Log in and launch through haproxy, as a person would.
  await formLogin(p, set.base, 'alice');
  await p.getByRole('button', { name: 'Log out' }).waitFor();
  await p.locator('[data-pool=rp]').getByRole('button', { name: /Launch|Reconnect/ }).click();
  await p.locator('.conn-connected').waitFor({ timeout: 30_000 });
  await waitFor(async () => near(await centrePixel(p), GREEN), 15_000, 50).catch(async () => assert.fail(`desktop not drawn: ${JSON.stringify(await centrePixel(p))}`));
  const [session] = await store.sessions.liveIdsOfUser('alice');
  assert.ok(session, 'alice has a session');
  const before = (await store.sessions.get(session))!;
  const claim = await waitFor(async () => {
    const t = await store.tickets.tunnel(session);
    return t?.state === 'connected' && t.guacd ? t : null;
  });
  const victim = set.replicaOfGateway(claim.guacd);
  assert.ok(victim >= 0, `the tunnel streams through a replica's gateway: ${claim.guacd}`);
  await p.screenshot({ path: join(ARTIFACTS, 'replicas-viewer-before.png') });
  await p.evaluate(PHASES);

  // SIGKILL of the replica carrying the tunnel; the viewer is left alone.
  const killedAt = Date.now();
  await set.replicas[victim]!.kill('SIGKILL');
  const phases = () => p.evaluate<PhaseChange[]>('window.__phases');
  let back: number | undefined;
  let sinceKill: PhaseChange[] = [];
  try {
    back = await waitFor(async () => {
      sinceKill = (await phases()).filter((x) => x.at >= killedAt);
      const dropped = sinceKill.findIndex((x) => x.phase !== 'connected');
      const again = dropped >= 0 && sinceKill.slice(dropped).some((x) => x.phase === 'connected');
      return again && near(await centrePixel(p), GREEN) ? Date.now() : null;
    }, 5000, 20);
  } catch {
    await p.screenshot({ path: join(ARTIFACTS, 'replicas-viewer-after-kill.png') });
    assert.fail(`not connected again with the desktop's pixels within 5 s: phases ${JSON.stringify(await phases())}, pixel ${JSON.stringify(await centrePixel(p))}`);
  }
  // It reconnected by itself: it never gave up (closed) on the way.
  assert.ok(sinceKill.every((x) => ['reconnecting', 'connecting', 'connected'].includes(x.phase)), JSON.stringify(sinceKill));
  const took = back! - killedAt;
  assert.ok(took < 5000, `back in ${took} ms`);
  assert.match((await p.locator('[data-testid=conn-state]').textContent()) ?? '', /^connected$/i);
  assert.equal(await p.locator('.conn-connected').count(), 1);
  await p.screenshot({ path: join(ARTIFACTS, 'replicas-viewer-reconnected.png') });
  assert.ok(tunnelsOpened.length >= 2 && tunnelsOpened.every((u) => u.startsWith(set!.base.replace(/^http/, 'ws'))), `a new tunnel through haproxy: ${JSON.stringify(tunnelsOpened)}`);

  // Through another replica's gateway; the same session on the same desktop; nothing assigned twice.
  const now = await waitFor(async () => {
    const t = await store.tickets.tunnel(session);
    return t?.state === 'connected' && t.guacd && t.guacd !== claim.guacd ? t : null;
  });
  const survivor = set.replicaOfGateway(now.guacd);
  assert.ok(survivor >= 0 && survivor !== victim, `streamed by a survivor: ${now.guacd}`);
  assert.deepEqual(await store.sessions.liveIdsOfUser('alice'), [session], 'the same session, and only it');
  const later = (await store.sessions.get(session))!;
  assert.equal(later.desktop, before.desktop, 'the same desktop');
  const held = (await store.desktops.listByPool('rp')).filter((d) => d.user);
  assert.deepEqual(held.map((d) => [d.id, d.user]), [[before.desktop, 'alice']], 'one desktop assigned, to alice');

  // The stream is live from that desktop: a change on it reaches the viewer.
  await xvnc.x('xsetroot', '-solid', '#8f3c6e');
  await waitFor(async () => near(await centrePixel(p), PURPLE), 10_000, 50);
  console.log(`replicas-viewer: viewer connected again with the desktop drawn ${took} ms after SIGKILL of r${victim}; now through r${survivor}`);
});
