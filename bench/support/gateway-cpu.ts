// The gateway alone, for profiling its encoding (issue 14; not a test): Xvnc painted by
// painter.c → the built-in gateway in its own process (gateway-process.ts) → a decoding client
// connected straight to it (no broker, no tunnel). Prints one JSON line per content with the
// gateway's CPU per drawn megapixel, split by thread (main thread, libuv pool, V8's GC
// helpers), so a change can be judged in a minute. The end-to-end figures are bench:stream's.
//
//   node --import tsx bench/support/gateway-cpu.ts [--seconds 8] [--modes text,photo,mixed]
//     [--mimetypes image/png,image/jpeg] [--repeat 1]
//   BENCH_GATEWAY_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles the gateway.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { GuacClient, lossless, type ClientStats, type ImageKind } from './guac-client.ts';
import { gatewayProcess, issueGrant, startGateway, type Gateway } from './gateway-process.ts';
import { buildPainter, startPainter, type Painter, type PainterMode } from './painter.ts';
import { startBenchXvnc, type BenchXvnc } from './xvnc.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    fps: { type: 'string', default: '30' },
    modes: { type: 'string', default: 'text,photo,mixed' },
    mimetypes: { type: 'string', default: 'image/png,image/jpeg' },
    repeat: { type: 'string', default: '1' },
  },
});
const SECONDS = Math.min(Math.max(Number(values.seconds) || 8, 1), 120);
const FPS = Math.min(Math.max(Number(values.fps) || 30, 1), 120);
const REPEAT = Math.min(Math.max(Number(values.repeat) || 1, 1), 20);
const MODES = values.modes!.split(',').filter((m): m is PainterMode => m === 'text' || m === 'photo' || m === 'mixed');
const W = 1280;
const H = 720;

/** CPU ms of each thread group of a process (Linux /proc; clock ticks of 10 ms). */
function threadCpu(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = (Number(f[11]) + Number(f[12])) * 10;
      const group = tid === String(pid) ? 'main' : comm.startsWith('libuv') ? 'pool' : comm.replace(/[0-9]+$/, '').trim();
      out[group] = (out[group] ?? 0) + ms;
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

const round = (x: number, d = 1) => Number(x.toFixed(d));

async function main(): Promise<void> {
  let xvnc: BenchXvnc | undefined;
  let gw: Gateway | undefined;
  let painter: Painter | undefined;
  let client: GuacClient | undefined;
  try {
    await buildPainter();
    xvnc = await startBenchXvnc(W, H);
    const key = randomBytes(32);
    gw = await startGateway({ listen: { socketDir: '' }, grantKey: key } as never);
    const pid = gatewayProcess.child!.pid!;
    const grant = issueGrant(key, { gateway: gw.address, readOnly: false, host: '127.0.0.1', port: xvnc.port });
    client = await GuacClient.gateway(gw.endpoint as never, grant, { mimetypes: values.mimetypes!.split(','), width: W, height: H });
    await client.until(() => client!.stats.drawnPixels >= W * H, 30_000);
    for (let rep = 0; rep < REPEAT; rep++) {
      for (const mode of MODES) {
        painter = await startPainter({ display: xvnc.display, mode, fps: FPS });
        await new Promise((r) => setTimeout(r, 1500)); // warm-up: a time window, not a condition
        const s0: ClientStats = structuredClone(client.stats);
        const u0 = await gatewayProcess.usage!();
        const th0 = threadCpu(pid);
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, SECONDS * 1000));
        const s1: ClientStats = structuredClone(client.stats);
        const u1 = await gatewayProcess.usage!();
        const th1 = threadCpu(pid);
        const secs = (performance.now() - t0) / 1000;
        await painter.stop();
        painter = undefined;
        const mp = (s1.drawnPixels - s0.drawnPixels) / 1e6;
        const kinds = Object.keys(s1.images) as ImageKind[];
        const px = (k: ImageKind) => s1.images[k].pixels - s0.images[k].pixels;
        const all = kinds.reduce((a, k) => a + px(k), 0);
        const byThread: Record<string, number> = {};
        for (const k of Object.keys(th1)) byThread[k] = round(((th1[k] ?? 0) - (th0[k] ?? 0)) / mp);
        process.stdout.write(
          `${JSON.stringify({
            mode,
            fps: round((s1.drawnFrames - s0.drawnFrames) / secs),
            mpPerSecond: round(mp / secs, 2),
            bytesPerMp: Math.round((s1.bytesIn - s0.bytesIn) / mp),
            gatewayCpuMsPerMp: round((u1.cpuMs - u0.cpuMs) / mp),
            // Threads alive at both ends only (libvips starts and ends its own).
            byThread,
            lossless: round(kinds.filter(lossless).reduce((a, k) => a + px(k), 0) / all, 3),
            types: Object.fromEntries(kinds.filter((k) => px(k) > 0).map((k) => [k, round(px(k) / all, 3)])),
          })}\n`,
        );
        if (client.closed) throw new Error(`stream ended: ${JSON.stringify(client.error)}`);
      }
    }
  } finally {
    client?.close();
    await painter?.stop().catch(() => undefined);
    await gw?.close().catch(() => undefined);
    await xvnc?.stop().catch(() => undefined);
  }
}

await main();
