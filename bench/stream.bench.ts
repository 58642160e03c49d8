// Streaming benchmark, end to end as a user sees it (issue 14; not a test). Prints ONE JSON line.
//
//   npm run bench:stream [-- --seconds 12 --fps 30 --idle 200 --modes text,photo,mixed]
//
// Source: a real X server (Xvnc 1280×720, depth 24) painted by bench/support/painter.c (Xlib +
// Xft: anti-aliased DejaVu text, photo-like frames, a photo region in a text page) at --fps.
// Path: Xvnc ⇄ the built-in gateway ⇄ the broker's WebSocket tunnel (guacamole-lite) ⇄ a client
// that decodes every image with sharp and composites it before it acknowledges `sync`, as a
// browser does (bench/support/guac-client.ts). The broker is a real broker process
// (bench/support/stream-broker.ts): the `manual` provider with a machine whose console is the
// Xvnc, added through the admin API; the user logs in over HTTP, requests a desktop, gets a
// ticket and opens the tunnel with it and the session cookie from the broker's Origin. The
// gateway runs the same code in a process of its own (gateway-hook.mjs) so that the broker's
// (tunnel) and the gateway's CPU and memory are measured apart; they talk over a unix socket,
// as in production. The client runs in this process.
//
// First, while the processes are fresh, --idle tunnels (each its own user, desktop, tunnel and
// gateway VNC session, all showing the same still page of text): RSS growth per tunnel of the
// broker process (WebSocket side) and of the gateway process, after GC, against a baseline with
// one tunnel open. Then another user's tunnel streams each content (painter mode) in turn; after a
// warm-up, over --seconds: frames/s drawn by the client, drawn megapixels per second, bytes on
// the WebSocket per drawn megapixel, CPU ms per drawn megapixel of the gateway and of the broker
// (process.cpuUsage() of each: user + system, all threads), and the share of image pixels sent
// lossless (png, lossless WebP) and lossy (jpeg, WebP), by the img mimetype (and the WebP
// bitstream).
// Everything is bounded; every process (Xvnc, painter, broker, gateway) is stopped at the end,
// also on error or Ctrl-C. For the gateway alone (no broker, CPU split by thread, a minute a
// run): `node --import tsx bench/support/gateway-cpu.ts`.
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ApiClient } from '../test/support/harness.ts';
import { BROKER_NODE_FLAGS } from '../server/node-flags.ts';
import { GuacClient, lossless, type ClientStats, type ImageKind } from './support/guac-client.ts';
import { buildPainter, startPainter, type Painter, type PainterMode } from './support/painter.ts';
import type { ProcessUsage } from './support/gateway-process.ts';
import { startBenchXvnc, type BenchXvnc } from './support/xvnc.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '12' },
    fps: { type: 'string', default: '30' },
    idle: { type: 'string', default: '200' },
    modes: { type: 'string', default: 'text,photo,mixed' },
  },
});
const SECONDS = Math.min(Math.max(Number(values.seconds) || 12, 1), 120);
const FPS = Math.min(Math.max(Number(values.fps) || 30, 1), 120);
const IDLE = Math.min(Math.max(Math.floor(Number(values.idle)), 0), 500);
const MODES = values.modes!.split(',').filter((m): m is PainterMode => m === 'text' || m === 'photo' || m === 'mixed');
const W = 1280;
const H = 720;
const WARMUP_MS = 2000;
/** Idle tunnels opened at once (they all start a VNC session on the one Xvnc). */
const IDLE_BATCH = 10;
/** Every wait in the bench ends by then. */
const STEP_TIMEOUT_MS = 60_000;
// The broker runs as docs/gateway.md recommends deploying it (glibc: 2 arenas, 1 MiB mmap
// threshold); BENCH_DEFAULT_MALLOC=1 measures glibc's defaults.
const MALLOC: Record<string, string> = process.env.BENCH_DEFAULT_MALLOC ? {} : { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '1048576' };

type Usage = { broker: ProcessUsage; gateway: ProcessUsage; tunnels: number };

/** The broker child process and a request/answer channel to it. */
class BrokerProcess {
  private seq = 0;
  private answers = new Map<number, (m: Record<string, unknown>) => void>();
  url = '';
  password = '';
  private out = '';

  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => (this.out = (this.out + d.toString()).slice(-4000)));
    child.on('message', (m: { id?: number }) => {
      if (m.id !== undefined) {
        this.answers.get(m.id)?.(m as Record<string, unknown>);
        this.answers.delete(m.id);
      }
    });
  }

  static async start(): Promise<BrokerProcess> {
    const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
    const child = fork(here('./support/stream-broker.ts'), [], {
      // BENCH_BROKER_NODE_ARGS / BENCH_GATEWAY_NODE_ARGS: extra node flags (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof).
      execArgv: [...BROKER_NODE_FLAGS, '--import', 'tsx', '--import', here('./support/gateway-hook.mjs'), '--expose-gc', ...(process.env.BENCH_BROKER_NODE_ARGS ?? '').split(' ').filter(Boolean)],
      env: { ...process.env, ...MALLOC },
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    const b = new BrokerProcess(child);
    const ready = await new Promise<{ url: string; password: string }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`broker did not start: ${b.out}`)), STEP_TIMEOUT_MS);
      child.once('exit', (code) => reject(new Error(`broker exited with ${code}: ${b.out}`)));
      child.on('message', (m: { ready?: { url: string; password: string } }) => {
        if (m.ready) {
          clearTimeout(t);
          resolve(m.ready);
        }
      });
    });
    b.url = ready.url;
    b.password = ready.password;
    return b;
  }

  ask<T>(msg: Record<string, unknown>): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`broker did not answer ${JSON.stringify(msg).slice(0, 80)}`)), STEP_TIMEOUT_MS);
      this.answers.set(id, (m) => {
        clearTimeout(t);
        if (m.error) reject(new Error(String(m.error)));
        else resolve(m as T);
      });
      this.child.send({ ...msg, id });
    });
  }

  usage(): Promise<Usage> {
    return this.ask<Usage>({ usage: true });
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    if (c.connected) c.send({ exit: true });
    const t = setTimeout(() => c.pid && c.exitCode === null && process.kill(c.pid, 'SIGKILL'), 30_000);
    await exited;
    clearTimeout(t);
  }
}

const t00 = Date.now();
/** Progress on stderr (stdout carries only the result line). */
const log = (msg: string) => process.stderr.write(`[stream ${((Date.now() - t00) / 1000).toFixed(1)}s] ${msg}\n`);

async function until(what: string, pred: () => Promise<boolean>, timeoutMs = STEP_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const snapshot = (s: ClientStats): ClientStats => structuredClone(s);
const round = (x: number, d = 1) => (Number.isFinite(x) ? Number(x.toFixed(d)) : null);

/** POST, asked again (bounded) while the broker answers 503 (pool exhausted for a moment, Redis slow on a busy host). */
async function post(api: ApiClient, path: string) {
  let r = await api.post(path);
  for (let i = 0; i < 15 && r.status === 503; i++) {
    await new Promise((res) => setTimeout(res, 2000));
    r = await api.post(path);
  }
  return r;
}

/** A user who logs in over HTTP, gets a desktop of the pool and a ticket, and opens the tunnel. */
async function openDesktop(url: string, user: string, password: string, draw: boolean): Promise<GuacClient> {
  const api = new ApiClient(url);
  const login = await api.login(user, password);
  if (login.status !== 200) throw new Error(`login ${user}: ${login.status}`);
  // A machine whose console probe timed out on a busy host is skipped by the assignment for a
  // while: the pool has spare machines, and a 503 is asked again.
  const r = await post(api, '/me/pools/bench/request');
  if (r.status !== 200 || r.body.outcome !== 'assigned') throw new Error(`request for ${user}: ${r.status} ${JSON.stringify(r.body)}`);
  const t = await post(api, `/me/sessions/${r.body.session.id}/connect`);
  if (t.status !== 200) throw new Error(`connect for ${user}: ${t.status} ${JSON.stringify(t.body)}`);
  return GuacClient.tunnel(url, { ticket: t.body.ticket, cookie: api.cookie, query: `width=${W}&height=${H}`, draw, timeoutMs: STEP_TIMEOUT_MS });
}

function phaseResult(seconds: number, s0: ClientStats, s1: ClientStats, u0: Usage, u1: Usage, painted: number) {
  const mp = (s1.drawnPixels - s0.drawnPixels) / 1e6;
  const kinds = Object.keys(s1.images) as ImageKind[];
  const imagePx = (k: ImageKind) => s1.images[k].pixels - s0.images[k].pixels;
  const allImagePx = kinds.reduce((a, k) => a + imagePx(k), 0);
  const losslessPx = kinds.filter(lossless).reduce((a, k) => a + imagePx(k), 0);
  const frames = s1.drawnFrames - s0.drawnFrames;
  const share: Record<string, number | null> = {};
  for (const k of kinds) if (imagePx(k) > 0) share[k] = round(imagePx(k) / allImagePx, 3);
  return {
    painterFramesPerSecond: round(painted / seconds),
    framesPerSecond: round(frames / seconds),
    drawnMegapixelsPerSecond: round(mp / seconds, 2),
    bytesPerMegapixel: Math.round((s1.bytesIn - s0.bytesIn) / mp),
    cpuMsPerMegapixel: {
      gateway: round((u1.gateway.cpuMs - u0.gateway.cpuMs) / mp),
      broker: round((u1.broker.cpuMs - u0.broker.cpuMs) / mp),
    },
    cpuPercent: {
      gateway: round(((u1.gateway.cpuMs - u0.gateway.cpuMs) / (seconds * 1000)) * 100),
      broker: round(((u1.broker.cpuMs - u0.broker.cpuMs) / (seconds * 1000)) * 100),
    },
    imagePixels: { lossless: round(losslessPx / allImagePx, 3), lossy: round((allImagePx - losslessPx) / allImagePx, 3), byType: share },
    fillAndCopyShare: round((s1.fillPixels - s0.fillPixels + s1.copyPixels - s0.copyPixels) / (mp * 1e6), 3),
    clientDecodeMsPerFrame: round((s1.decodeMs - s0.decodeMs) / Math.max(frames, 1)),
  };
}

async function main(): Promise<void> {
  const started = Date.now();
  const cpus = os.cpus();
  const result: Record<string, unknown> = {
    bench: 'stream',
    machine: { cpus: cpus.length, model: cpus[0]?.model ?? '', node: process.version, loadAverage: os.loadavg().map((x) => round(x)) },
    width: W,
    height: H,
    painterFps: FPS,
    seconds: SECONDS,
    malloc: Object.keys(MALLOC).length ? MALLOC : 'glibc defaults',
  };
  let xvnc: BenchXvnc | undefined;
  let painter: Painter | undefined;
  let broker: BrokerProcess | undefined;
  const clients: GuacClient[] = [];
  const cleanup = async () => {
    for (const c of clients) c.close();
    await painter?.stop().catch(() => undefined);
    await broker?.stop().catch(() => undefined);
    await xvnc?.stop().catch(() => undefined);
  };
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await buildPainter();
    log('painter built');
    [xvnc, broker] = await Promise.all([startBenchXvnc(W, H), BrokerProcess.start()]);
    // bench0: the baseline tunnel of the idle phase; bench1..IDLE: idle tunnels; the last streams.
    const users = Array.from({ length: IDLE + 2 }, (_, i) => `bench${i}`);
    log(`Xvnc :${xvnc.display} and broker ${broker.url} started`);
    await broker.ask({ users: ['admin', ...users] });
    const admin = new ApiClient(broker.url);
    if ((await admin.login('admin', broker.password)).status !== 200) throw new Error('admin login failed');
    const pool = await admin.post('/pools', {
      name: 'bench', displayName: 'Bench', assignment: 'floating', persistence: 'persistent', size: { min: 0, max: 0, spare: 0 },
      naming: 'bench-{n}', image: 'none', provider: 'lab', entitlements: { users: [], groups: ['bench'] },
    });
    if (pool.status !== 201) throw new Error(`pool: ${pool.status} ${JSON.stringify(pool.body)}`);
    // The desktops: machines of the manual pool whose console is the Xvnc (all the same one).
    const machines = users.length + Math.max(5, Math.ceil(IDLE / 10));
    const names = Array.from({ length: machines }, (_, i) => `pc-${String(i).padStart(3, '0')}`);
    const csv = ['name,pool,protocol,address,port', ...names.map((n) => `${n},bench,vnc,127.0.0.1,${xvnc!.port}`)].join('\n');
    const imported = await admin.post('/machines/import', { csv });
    if (imported.status !== 200 || imported.body.failed?.length) throw new Error(`machines: ${imported.status} ${JSON.stringify(imported.body).slice(0, 300)}`);
    await until('the machines to be ready', async () => {
      const r = await admin.get('/machines?pool=bench');
      return r.status === 200 && r.body.machines.filter((m: { desktop?: { state?: string } }) => m.desktop?.state === 'ready').length === machines;
    }, Math.max(STEP_TIMEOUT_MS, machines * 1000));

    log(`${machines} machines ready`);
    // 1. Idle tunnels first, while the processes are fresh: each its own user, desktop, tunnel
    // and gateway VNC session, all showing the same still page of text. The baseline has one
    // tunnel open (bench0's).
    painter = await startPainter({ display: xvnc.display, mode: 'text', fps: 0 });
    if (IDLE > 0) {
      const warm = await openDesktop(broker.url, users[0]!, broker.password, false);
      clients.push(warm);
      await warm.until(() => warm.stats.frames >= 1, STEP_TIMEOUT_MS);
      const settle = async () => {
        // Idle framebuffers are deflated after 2 s without changes; freed buffers go after a GC.
        await new Promise((r) => setTimeout(r, 3000));
        await broker!.usage();
        await new Promise((r) => setTimeout(r, 1000));
        return broker!.usage();
      };
      const base = await settle();
      const idle: GuacClient[] = [];
      for (let i = 1; i <= IDLE; i += IDLE_BATCH) {
        const batch = users.slice(i, Math.min(i + IDLE_BATCH, IDLE + 1));
        const opened = await Promise.all(batch.map((u) => openDesktop(broker!.url, u, broker!.password, false)));
        idle.push(...opened);
        clients.push(...opened);
        await Promise.all(opened.map((c) => c.until(() => c.stats.frames >= 1, STEP_TIMEOUT_MS)));
        log(`${idle.length} idle tunnels open`);
      }
      const loaded = await settle();
      const gone = [warm, ...idle].filter((c) => c.closed).map((c) => JSON.stringify(c.error ?? 'closed'));
      if (loaded.tunnels < IDLE + 1 || gone.length) throw new Error(`only ${loaded.tunnels} tunnels open; closed: ${gone.join(' ')}`);
      result.idle = {
        tunnels: IDLE,
        rssPerTunnelBytes: {
          broker: Math.round((loaded.broker.rss - base.broker.rss) / IDLE),
          gateway: Math.round((loaded.gateway.rss - base.gateway.rss) / IDLE),
        },
        liveBytesPerTunnel: {
          broker: Math.round((loaded.broker.heap - base.broker.heap + loaded.broker.external - base.broker.external) / IDLE),
          gateway: Math.round((loaded.gateway.heap - base.gateway.heap + loaded.gateway.external - base.gateway.external) / IDLE),
        },
        rssMiB: { broker: round(loaded.broker.rss / 2 ** 20), gateway: round(loaded.gateway.rss / 2 ** 20) },
      };
      log(`idle: ${JSON.stringify(result.idle)}`);
      for (const c of [warm, ...idle]) c.close();
      await until('the idle tunnels to close', async () => (await broker!.usage()).tunnels === 0);
    }
    await painter.stop();
    painter = undefined;

    // 2. Another user streams each kind of content in turn.
    const client = await openDesktop(broker.url, users.at(-1)!, broker.password, true);
    clients.push(client);
    await client.until(() => client.framebuffer.width === W && client.stats.drawnPixels >= W * H, STEP_TIMEOUT_MS);

    for (const mode of MODES) {
      painter = await startPainter({ display: xvnc.display, mode, fps: FPS });
      const f0 = client.stats.drawnFrames;
      await new Promise((r) => setTimeout(r, WARMUP_MS));
      await client.until(() => client.stats.drawnFrames >= f0 + 3, STEP_TIMEOUT_MS);
      const [s0, u0, p0, t0] = [snapshot(client.stats), await broker.usage(), painter.frames(), performance.now()];
      await new Promise((r) => setTimeout(r, SECONDS * 1000));
      const [s1, u1, p1, t1] = [snapshot(client.stats), await broker.usage(), painter.frames(), performance.now()];
      result[mode] = phaseResult((t1 - t0) / 1000, s0, s1, u0, u1, p1 - p0);
      log(`${mode}: ${JSON.stringify(result[mode])}`);
      await painter.stop();
      painter = undefined;
      if (client.error || client.closed) throw new Error(`the stream ended during ${mode}: ${JSON.stringify(client.error)}`);
    }
    (result.machine as Record<string, unknown>).loadAverageAfter = os.loadavg().map((x) => round(x));
    result.totalSeconds = Math.round((Date.now() - started) / 1000);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
