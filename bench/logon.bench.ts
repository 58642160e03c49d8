// npm run bench:logon [-- --n 3 --concurrent 2]
// Click-to-usable on warm spares, through the user's path: a broker with the embedded QEMU
// driver (TCG where KVM fails), the broker-run smbd for users' folders and a pool of ready
// floating persistent desktops of the demo image. Each launch, as a browser does it:
//   Launch click → POST /me/pools/{pool}/request (the agent mounts the user's folder before it
//   answers) → POST /me/sessions/{id}/connect → WebSocket tunnel, ticket as the first message,
//   Guacamole handshake, first drawn frame (img + sync) → reported to /first-frame → then the
//   user types `echo <mark> > <mark>` + Enter into the console; usable = that file shows up in
//   the user's folder on the host (a shell prompt answering in their home, over SMB).
// N sequential launches (logoff between them, waiting for the desktop to be ready again), then
// N concurrent launches of N users. Prints ONE JSON line: click-to-usable and each logon
// phase (the broker's timeline) as p50/p95 in ms. Bounded: every wait has a deadline.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDemoImage, TestEnv } from '../test/qemu/helpers.ts';
import { startTestBroker, ApiClient, waitFor } from '../test/support/harness.ts';
import { freePort } from '../test/support/redis.ts';
import { TunnelClient } from '../test/tunnel/support/tunnel-client.ts';
import { SYSTEM_ACTOR } from '../server/broker/index.ts';
import { LOGON_PHASES } from '../server/broker/model.ts';

const { values } = parseArgs({ options: { n: { type: 'string', default: '5' }, concurrent: { type: 'string', default: '2' } } });
const N = Math.min(Math.max(Number(values.n) || 5, 1), 20);
const C = Math.min(Math.max(Number(values.concurrent) || 2, 1), 4);
const LAUNCH_DEADLINE_MS = 120_000;

function pct(sorted: number[], p: number): number | null {
  if (!sorted.length) return null;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((sorted.length * p) / 100) - 1)]!);
}
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 50), p95: pct(s, 95), max: s.length ? Math.round(s.at(-1)!) : null };
};

/** X11 keysyms: printable Latin-1 is its code point; Return is 0xff0d. */
const SHIFT_L = 0xffe1;
/** Characters a US keyboard types with Shift: QEMU turns a keysym into its key only, as a browser's keyboard does. */
const SHIFTED = /[A-Z~!@#$%^&*()_+{}|:"<>?]/;

/** Press and release events for typing `text`, with Shift held around shifted characters. */
function keyEvents(text: string): Array<[number, 0 | 1]> {
  const out: Array<[number, 0 | 1]> = [];
  for (const ch of text) {
    const k = ch === '\n' ? 0xff0d : ch.codePointAt(0)!;
    const shift = SHIFTED.test(ch);
    if (shift) out.push([SHIFT_L, 1]);
    out.push([k, 1], [k, 0]);
    if (shift) out.push([SHIFT_L, 0]);
  }
  return out;
}

const env = new TestEnv('bench-logon');
ensureDemoImage();
const shareRoot = path.join(env.root, 'share');
fs.mkdirSync(shareRoot);
const smbPort = await freePort();
const provider = env.provider([env.host('h1', { capacity: { vcpu: 8, memoryMiB: 4096 } })], {
  guestForwards: [{ guestAddress: '10.0.2.100', guestPort: 445, host: '127.0.0.1', port: smbPort }],
});
const tb = await startTestBroker({
  name: 'bench-logon',
  providers: [provider],
  config: {
    jobs: { enabled: true, inventoryIntervalMs: 1000 },
    // The harness registers "demo" without its manifest: say it carries our agent (as the built image's manifest does).
    agent: { defaultImageAgent: 'vdi' },
    shares: { list: [{ name: 'home', root: shareRoot, unc: '', guacdPath: '', createRoot: false, smb: { managed: true, port: smbPort, dir: path.join(env.root, 'samba') } }] },
  } as never,
});

type Launch = { usable: number; phases: Record<string, number> };

async function waitReady(pool: string, n: number): Promise<void> {
  await waitFor(async () => (await tb.app.store.desktops.idsInState(pool, 'ready')).length >= n, 300_000, 250);
}

async function launch(user: ApiClient, userId: string, pool: string): Promise<Launch & { session: string }> {
  const click = performance.now();
  const r = await user.post(`/me/pools/${pool}/request`);
  if (r.status !== 200) throw new Error(`request answered ${r.status}: ${JSON.stringify(r.body)}`);
  const session = r.body.session.id as string;
  const t = await user.post(`/me/sessions/${session}/connect`);
  if (t.status !== 200) throw new Error(`connect answered ${t.status}: ${JSON.stringify(t.body)}`);
  const tunnel = new TunnelClient(tb.url, { ticket: t.body.ticket, as: { cookie: user.cookie, bearer: '' }, query: 'width=1024&height=768' });
  try {
    await tunnel.ready(LAUNCH_DEADLINE_MS);
    // The first frame: image data followed by the sync that ends the frame (what the browser paints).
    await tunnel.next((i) => i.opcode === 'img' || i.opcode === 'png' || i.opcode === 'jpeg', LAUNCH_DEADLINE_MS);
    await tunnel.next((i) => i.opcode === 'sync', LAUNCH_DEADLINE_MS);
    const firstFrame = performance.now() - click;
    await user.post(`/me/sessions/${session}/first-frame`, { ms: Math.round(firstFrame) });
    // Usable: a command typed into the console runs in the user's home, and its file reaches the share.
    const mark = `m${randomBytes(4).toString('hex')}`;
    const file = path.join(shareRoot, userId, mark);
    const deadline = Date.now() + LAUNCH_DEADLINE_MS;
    let typedAt = 0;
    while (!fs.existsSync(file)) {
      if (Date.now() > deadline) {
        // What the user would see, for whoever reads the failure.
        const shot = path.join(os.tmpdir(), `bench-logon-${mark}.png`);
        await provider.screenshot(r.body.desktop.id as string, shot).catch(() => undefined);
        throw new Error(`typed command never wrote ${file} (console: ${shot})`);
      }
      // Typed again if the shell was not there yet (keys before the prompt may be lost).
      if (Date.now() - typedAt > 3000) {
        for (const [k, down] of keyEvents(`echo ${mark} > ${mark}\n`)) tunnel.send('key', k, down);
        typedAt = Date.now();
      }
      await new Promise((res) => setTimeout(res, 20));
    }
    const usable = performance.now() - click;
    const s = await tb.app.store.sessions.get(session);
    const phases: Record<string, number> = {};
    for (const p of LOGON_PHASES) if (typeof s?.logon?.[p] === 'number') phases[p] = s.logon[p]!;
    return { usable, phases, session };
  } finally {
    tunnel.close();
  }
}

async function logoff(user: ApiClient, session: string): Promise<void> {
  const r = await user.post(`/me/sessions/${session}/logoff`);
  if (r.status !== 200) throw new Error(`logoff answered ${r.status}`);
}

function summarise(runs: Launch[]) {
  const phases: Record<string, ReturnType<typeof stats>> = {};
  for (const p of LOGON_PHASES) {
    const xs = runs.map((r) => r.phases[p]).filter((x): x is number => typeof x === 'number');
    if (xs.length) phases[p] = stats(xs);
  }
  return { clickToUsableMs: stats(runs.map((r) => r.usable)), phasesMs: phases };
}

let out: Record<string, unknown> = {};
try {
  const users = Array.from({ length: C }, (_, i) => `bench${i}`);
  for (const u of users) await tb.addUser(u);
  await tb.app.broker.pools.create(tb.pool({
    name: 'bench', provider: 'local', naming: 'bench-{n:02}', assignment: 'floating', persistence: 'persistent',
    size: { min: C, max: C, spare: C }, entitlements: { users, groups: [] },
    resources: { vcpu: 1, memoryMiB: 192, diskGiB: 1, network: 'default', graphics: 'vga' },
  }), SYSTEM_ACTOR);
  tb.app.startJobs();
  const tReady = performance.now();
  await waitReady('bench', C);
  const poolReadyMs = Math.round(performance.now() - tReady);
  const clients = await Promise.all(users.map(async (u) => {
    const c = new ApiClient(tb.url);
    if ((await c.login(u)).status !== 200) throw new Error(`login ${u} failed`);
    return c;
  }));

  const sequential: Launch[] = [];
  for (let i = 0; i < N; i++) {
    const r = await launch(clients[0]!, users[0]!, 'bench');
    sequential.push(r);
    process.stderr.write(`sequential ${i + 1}/${N}: usable in ${Math.round(r.usable)} ms ${JSON.stringify(r.phases)}\n`);
    await logoff(clients[0]!, r.session);
    await waitReady('bench', C);
  }

  const concurrent: Launch[] = [];
  const rounds = Math.max(1, Math.ceil(N / C));
  for (let round = 0; round < rounds; round++) {
    const rs = await Promise.all(users.map((u, i) => launch(clients[i]!, u, 'bench')));
    for (const r of rs) process.stderr.write(`concurrent round ${round + 1}: usable in ${Math.round(r.usable)} ms\n`);
    concurrent.push(...rs);
    await Promise.all(rs.map((r, i) => logoff(clients[i]!, r.session)));
    await waitReady('bench', C);
  }

  out = {
    bench: 'logon',
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '', memGiB: Math.round(os.totalmem() / 2 ** 30) },
    accel: await provider.accelerator(),
    spares: C,
    poolReadyMs,
    sequential: { launches: N, ...summarise(sequential) },
    concurrent: { users: C, launches: concurrent.length, ...summarise(concurrent) },
  };
} finally {
  await tb.close();
  await env.cleanup();
}
process.stdout.write(JSON.stringify(out) + '\n');
