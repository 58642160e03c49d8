// Streaming benchmark for server/gateway (not a test). The gateway runs in a child process
// so its CPU and memory are measured alone; this process plays a VNC server (a tiny RFB
// server pushing full-screen 1280×720 updates, photo-like and text-like) and a browser-like
// client that answers every `sync`. Like the broker, it runs the gateway on a unix socket and
// opens every connection with a grant signed with a key derived from a shared secret.
// Prints ONE JSON line. Bounded to well under 60 s.
//
//   node --import tsx bench/stream.bench.ts
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { grantKey, issueGrant, startGateway, type GuacdEndpoint } from '../server/gateway/index.ts';
import { FakeRfbServer, type FakeRfbConnection } from '../test/gateway/support/fake-rfb.ts';
import { GuacTestClient } from '../test/gateway/support/guac-client.ts';

const W = 1280;
const H = 720;
const PHASE_MS = 7000;
const IDLE_TUNNELS = 200;
/** The tunnel secret the gateway child and this process share (parent side). */
const benchSecret = randomBytes(48).toString('base64url');

type Usage = { cpu: number; rss: number; heap: number; external: number };

if (process.argv.includes('--gateway-child')) {
  // The shared secret comes over IPC (as every replica reads the tunnel secret), never argv.
  const secret = await new Promise<string>((resolve) => process.once('message', (m: { secret: string }) => resolve(m.secret)));
  const gw = await startGateway({ listen: { socketDir: '' }, grantKey: grantKey(secret), logger: pino({ level: 'warn' }), timings: { idleTimeoutMs: 120_000 } });
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on('message', (m: string) => {
    if (m === 'usage') {
      gc?.();
      const u = process.cpuUsage();
      const mem = process.memoryUsage();
      process.send!({ cpu: (u.user + u.system) / 1e6, rss: mem.rss, heap: mem.heapUsed, external: mem.external } satisfies Usage);
    } else if (m === 'exit') {
      void gw.close().then(() => process.exit(0));
    }
  });
  process.send!({ endpoint: gw.endpoint, address: gw.address });
} else {
  await main();
}

function photoFrame(seed: number): Buffer {
  const px = Buffer.allocUnsafe(W * H * 4);
  let n = seed * 2654435761;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      n = (n * 1103515245 + 12345) >>> 0;
      const noise = (n >>> 24) & 15;
      const o = (y * W + x) * 4;
      px[o] = (x + seed * 7 + noise) & 255;
      px[o + 1] = (y + seed * 3 + noise) & 255;
      px[o + 2] = ((x + y) / 4 + seed * 5) & 255;
      px[o + 3] = 0;
    }
  }
  return px;
}

function textFrame(seed: number): Buffer {
  // Dark "glyphs" on white: 8×16 cells, a pseudo-random 5×9 bitmap per cell, scrolling.
  const px = Buffer.alloc(W * H * 4, 255);
  for (let cy = 0; cy < H / 16; cy++) {
    for (let cx = 0; cx < W / 8; cx++) {
      const g = ((cx * 31 + (cy + seed) * 17) * 2654435761) >>> 0;
      if (g % 7 === 0) continue; // spaces
      for (let y = 3; y < 12; y++) {
        for (let x = 1; x < 6; x++) {
          if ((g >>> ((x * 9 + y) % 31)) & 1) {
            const o = ((cy * 16 + y) * W + cx * 8 + x) * 4;
            px[o] = 20;
            px[o + 1] = 20;
            px[o + 2] = 40;
          }
        }
      }
    }
  }
  return px;
}

type GatewayChild = { endpoint: GuacdEndpoint; address: string; usage(): Promise<Usage>; stop(): Promise<void> };

/** What the broker's tunnel does for each connection: a grant for this gateway and endpoint. */
function grantFor(gw: GatewayChild, vncPort: number): string {
  return issueGrant(grantKey(benchSecret), { gateway: gw.address, host: '127.0.0.1', port: vncPort, readOnly: false });
}

/** Starts the gateway in its own process so its CPU and memory are measured alone. */
async function spawnGateway(malloc: Record<string, string>): Promise<GatewayChild> {
  const env = { ...process.env, ...malloc };
  const child = fork(fileURLToPath(import.meta.url), ['--gateway-child'], {
    env,
    execArgv: ['--import', 'tsx', '--expose-gc'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  child.send({ secret: benchSecret });
  const where = await new Promise<{ endpoint: GuacdEndpoint; address: string }>((resolve) => child.once('message', resolve));
  return {
    ...where,
    usage: () =>
      new Promise<Usage>((resolve) => {
        child.once('message', (m: Usage) => resolve(m));
        child.send('usage');
      }),
    stop: async () => {
      if (child.exitCode !== null) return;
      child.send('exit');
      await new Promise((r) => {
        const t = setTimeout(() => {
          if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
          r(undefined);
        }, 3000);
        child.once('exit', () => {
          clearTimeout(t);
          r(undefined);
        });
      });
    },
  };
}

async function main(): Promise<void> {
  const started = Date.now();
  // Run the gateway as docs/gateway.md recommends deploying it: glibc with 2 malloc arenas
  // and a fixed 1 MiB mmap threshold, so big frame buffers go back to the OS when freed
  // instead of staying in the process (BENCH_DEFAULT_MALLOC=1 measures glibc's defaults).
  const malloc: Record<string, string> = process.env.BENCH_DEFAULT_MALLOC ? {} : { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '1048576' };
  const frames = { photo: [0, 1, 2, 3].map(photoFrame), text: [0, 1, 2, 3].map(textFrame) };
  let mode: 'photo' | 'text' | 'idle' = 'photo';
  let seq = 0;
  const rfb = await FakeRfbServer.start({ width: W, height: H });
  const push = (c: FakeRfbConnection) => {
    if (mode === 'idle') {
      // Idle desktops answer only the first (full) request.
      if (c.messages.filter((m) => m.type === 'request').length === 1) c.sendRaw(0, 0, W, H, Buffer.alloc(W * H * 4, 0x40));
      return;
    }
    const list = frames[mode];
    c.sendRaw(0, 0, W, H, list[seq++ % list.length]!);
  };
  rfb.onConnection = (c) => (c.onRequest = push);
  const result: Record<string, unknown> = { bench: 'gateway-stream', width: W, height: H, malloc: Object.keys(malloc).length ? malloc : 'glibc defaults' };
  const children: GatewayChild[] = [];

  try {
    // 1. One session streaming full-screen changes as fast as the client acknowledges.
    const gw = await spawnGateway(malloc);
    children.push(gw);
    const client = await GuacTestClient.connect(gw.endpoint);
    let bytes = 0;
    client.socket.on('data', (d: Buffer) => (bytes += d.length));
    await client.handshake({}, grantFor(gw, rfb.port));
    for (const phase of ['photo', 'text'] as const) {
      mode = phase;
      for (let i = 0; i < 3; i++) await client.frame(); // warm up
      const u0 = await gw.usage();
      const b0 = bytes;
      const t0 = Date.now();
      let n = 0;
      while (Date.now() - t0 < PHASE_MS) {
        const f = await client.frame();
        if (f.images.length > 0 || f.instructions.some((i) => i.opcode === 'cfill')) n++;
        // Drop parsed instructions so the client's memory stays flat.
        client.received.length = 0;
        (client as unknown as { cursor: number }).cursor = 0;
      }
      const secs = (Date.now() - t0) / 1000;
      const u1 = await gw.usage();
      result[phase] = {
        framesPerSecond: +(n / secs).toFixed(1),
        bytesPerFrame: Math.round((bytes - b0) / n),
        cpuSecondsPerFrame: +((u1.cpu - u0.cpu) / n).toFixed(4),
      };
    }
    client.close();
    await gw.stop();

    // 2. A fresh gateway with 200 idle tunnels (each its own 1280×720 VNC session).
    mode = 'idle';
    const idleGw = await spawnGateway(malloc);
    children.push(idleGw);
    const warm = await GuacTestClient.connect(idleGw.endpoint);
    await warm.handshake({}, grantFor(idleGw, rfb.port));
    await warm.frame();
    await new Promise((r) => setTimeout(r, 3000));
    await idleGw.usage();
    await new Promise((r) => setTimeout(r, 1000));
    const base = await idleGw.usage();
    const idle: GuacTestClient[] = [warm];
    for (let i = 0; i < IDLE_TUNNELS; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          const c = await GuacTestClient.connect(idleGw.endpoint);
          idle.push(c);
          await c.handshake({}, grantFor(idleGw, rfb.port));
          await c.frame();
        }),
      );
    }
    // Idle desktops' framebuffers are deflated after 2 s without changes; zlib handles are
    // freed a little after the GC that finds them.
    await new Promise((r) => setTimeout(r, 3000));
    await idleGw.usage();
    await new Promise((r) => setTimeout(r, 1000));
    const loaded = await idleGw.usage();
    result.idle = {
      tunnels: IDLE_TUNNELS,
      rssPerTunnelBytes: Math.round((loaded.rss - base.rss) / IDLE_TUNNELS),
      liveBytesPerTunnel: Math.round((loaded.heap - base.heap + loaded.external - base.external) / IDLE_TUNNELS),
      framebufferBytes: W * H * 4,
    };
    for (const c of idle) c.close();
    result.seconds = Math.round((Date.now() - started) / 1000);
    console.log(JSON.stringify(result));
  } finally {
    for (const c of children) await c.stop();
    await rfb.close();
  }
}
