// QEMU driver benchmark: creates N linked clones of the demo image, boots M of them, live-
// migrates a 256 MiB desktop between two hosts, and measures idle memory per desktop.
// Prints ONE JSON line. Bounded (every wait has a deadline) and cleans up after itself.
//   node --import tsx bench/clone.bench.ts [--clones 20] [--boot 2] [--idle-seconds 5]
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { QemuProvider } from '../server/providers/qemu/qemu.provider.ts';
import { TestEnv, ensureDemoImage, makeSpec, waitFor } from '../test/qemu/helpers.ts';

const { values } = parseArgs({
  options: {
    clones: { type: 'string', default: '20' },
    boot: { type: 'string', default: '2' },
    'idle-seconds': { type: 'string', default: '5' },
  },
});
const N = Math.min(Math.max(Number(values.clones), 1), 500);
const M = Math.min(Math.max(Number(values.boot), 1), N, 8);
const idleSeconds = Math.min(Math.max(Number(values['idle-seconds']), 0), 60);

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (f: number) => Math.round((s[Math.min(s.length - 1, Math.floor(f * s.length))] ?? 0) * 10) / 10;
  return { n: s.length, mean: Math.round((s.reduce((a, b) => a + b, 0) / (s.length || 1)) * 10) / 10, p50: q(0.5), p95: q(0.95), max: q(1) };
};

async function guestReady(p: QemuProvider, id: string, t0: number): Promise<number> {
  const { log } = await p.serial(id);
  return waitFor(() => (fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('VDI-READY') ? Date.now() - t0 : undefined), 120_000, `guest ${id} ready`);
}

function rssMiB(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : undefined;
}

const t00 = Date.now();
ensureDemoImage();
const env = new TestEnv('bench');
try {
  const p = env.provider([env.host('h1', { capacity: { vcpu: 1024, memoryMiB: 1 << 20 } }), env.host('h2', { capacity: { vcpu: 1024, memoryMiB: 1 << 20 } })], { placement: 'depth' });
  const accel = await p.accelerator();
  const specs = Array.from({ length: N }, () => makeSpec('bench', { host: 'h1' }, { memoryMiB: 160 }));
  const cloneMs: number[] = [];
  for (const s of specs) {
    const t = performance.now();
    await p.create(s);
    cloneMs.push(performance.now() - t);
  }
  const booted = specs.slice(0, M);
  const startMs: number[] = [];
  const readyMs: number[] = [];
  await Promise.all(booted.map(async (s) => {
    const t0 = Date.now();
    await p.start(s.id);
    startMs.push(Date.now() - t0);
    readyMs.push(await guestReady(p, s.id, t0));
  }));
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const rss = booted.map(async (s) => rssMiB(await p.pid(s.id)));
  const rssPerDesktop = (await Promise.all(rss)).filter((x): x is number => x !== undefined);

  const big = makeSpec('bench-mig', { host: 'h1' }, { memoryMiB: 256 });
  const tb = Date.now();
  await p.create(big);
  await p.start(big.id);
  await guestReady(p, big.id, tb);
  const mig = await p.migrate(big.id, 'h2');

  for (const s of [...specs, big]) await p.destroy(s.id);
  const result = {
    bench: 'qemu-clone',
    accel,
    clones: N,
    booted: M,
    cloneCreateMs: stats(cloneMs),
    cloneTargetMs: 50,
    consoleAnswersMs: stats(startMs),
    guestReadyMs: stats(readyMs),
    migration256MiB: { durationMs: mig.durationMs, transferredBytes: mig.transferredBytes, from: mig.fromHost, to: mig.toHost },
    idleRssMiBPerDesktop: { values: rssPerDesktop, mean: stats(rssPerDesktop).mean, guestMemoryMiB: 160, idleSeconds },
    totalMs: Date.now() - t00,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
} finally {
  await env.cleanup();
}
