// Resources: hosts' CPU and memory against capacity and overcommit, disk space for overlays,
// images and users' folders, desktops quarantined (state error) and why, pools with no warm
// spare, and GPU devices.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type CheckFamily, type CheckResult, fail, ok, skipped, warn } from './types.ts';

const GiB = 1024 ** 3;

/** Free space of the file system holding `dir` (its nearest existing parent). */
export function diskSpace(dir: string): { freeBytes: number; totalBytes: number; mount: string } | undefined {
  let d = path.resolve(dir);
  while (!fs.existsSync(d) && d !== path.dirname(d)) d = path.dirname(d);
  try {
    const s = fs.statfsSync(d);
    return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize, mount: d };
  } catch {
    return undefined;
  }
}

export const DISK = { warnFreeRatio: 0.1, warnFreeBytes: 5 * GiB, failFreeRatio: 0.02, failFreeBytes: 1 * GiB };

function diskCheck(target: string, dir: string, what: string): CheckResult {
  const s = diskSpace(dir);
  if (!s) return skipped('resources.disk', target, `cannot read the free space under ${dir}`);
  const ratio = s.totalBytes ? s.freeBytes / s.totalBytes : 0;
  const gib = (b: number) => `${(b / GiB).toFixed(1)} GiB`;
  const details = { dir, freeBytes: s.freeBytes, totalBytes: s.totalBytes, freePercent: Math.round(ratio * 1000) / 10 };
  const msg = `${gib(s.freeBytes)} free of ${gib(s.totalBytes)} (${details.freePercent}%) for ${what} (${dir})`;
  const fix = `Free space under ${dir} (old image versions no pool uses, deleted desktops' leftovers: see the inventory), or grow the volume. Copy-on-write overlays grow as guests write: a full disk pauses every desktop on it.`;
  if (s.freeBytes < DISK.failFreeBytes || ratio < DISK.failFreeRatio) return fail('resources.disk', target, msg, fix, details);
  if (s.freeBytes < DISK.warnFreeBytes || ratio < DISK.warnFreeRatio) return warn('resources.disk', target, msg, fix, details);
  return ok('resources.disk', target, msg, details);
}

export const resourceChecks: CheckFamily = async (ctx) => {
  const out: CheckResult[] = [];
  // Hosts: load against capacity (capacity already includes the configured overcommit).
  await Promise.all(ctx.providers.list().map(async (p) => {
    const cfg = ctx.config.providers.find((c) => c.name === p.name);
    let hosts;
    try {
      hosts = await p.hosts();
    } catch (e) {
      out.push(fail('resources.host', p.name, `cannot list the hosts of ${p.name}: ${(e as Error).message}`, 'Check the provider\'s hosts are reachable.'));
      return;
    }
    for (const h of hosts) {
      if (h.reachable === false) continue;
      if (cfg?.kind === 'manual') continue;
      const hc = cfg && 'hosts' in cfg ? (cfg.hosts as { name: string; overcommit?: { cpu: number; memory: number } }[]).find((x) => x.name === h.name) : undefined;
      const cpu = h.capacity.vcpu ? h.used.vcpu / h.capacity.vcpu : 0;
      const mem = h.capacity.memoryMiB ? h.used.memoryMiB / h.capacity.memoryMiB : 0;
      const details: Record<string, unknown> = { capacity: h.capacity, used: h.used, overcommit: hc?.overcommit ?? null, cpuLoad: Math.round(cpu * 100), memoryLoad: Math.round(mem * 100) };
      const target = `${p.name}/${h.name}`;
      const problems: string[] = [];
      // QEMU hosts live on this machine: compare with its real memory too.
      if (cfg?.kind === 'qemu') {
        const physMiB = Math.round(os.totalmem() / 1024 / 1024);
        details.physicalMemoryMiB = physMiB;
        details.physicalCpus = os.cpus().length;
        if (hc?.overcommit && hc.overcommit.memory > 1) problems.push(`memory is overcommitted ${hc.overcommit.memory}x: when guests use what they were given, the host swaps and every desktop on it stalls`);
        if (h.used.memoryMiB > physMiB) problems.push(`desktops were given ${h.used.memoryMiB} MiB but the machine has ${physMiB} MiB`);
      }
      if (cpu > 1 || mem > 1) out.push(fail('resources.host', target, `host over capacity: ${h.used.vcpu}/${h.capacity.vcpu} vCPU, ${h.used.memoryMiB}/${h.capacity.memoryMiB} MiB${problems.length ? `; ${problems.join('; ')}` : ''}`, 'Move desktops away (drain or migrate), lower the pools\' max, or add a host.', details));
      else if (cpu > 0.9 || mem > 0.9 || problems.length) out.push(warn('resources.host', target, `host ${Math.round(Math.max(cpu, mem) * 100)}% full (${h.used.vcpu}/${h.capacity.vcpu} vCPU, ${h.used.memoryMiB}/${h.capacity.memoryMiB} MiB)${problems.length ? `; ${problems.join('; ')}` : ''}`, 'Add capacity before the pools grow into it; keep memory overcommit at 1 unless guests use ballooning.', details));
      else out.push(ok('resources.host', target, `${h.used.desktops} desktops, ${h.used.vcpu}/${h.capacity.vcpu} vCPU, ${h.used.memoryMiB}/${h.capacity.memoryMiB} MiB`, details));
    }
  }));
  // Disk space where overlays, images and users' folders live.
  for (const p of ctx.config.providers) if (p.kind === 'qemu') for (const h of p.hosts) out.push(diskCheck(`${p.name}/${h.name}`, h.dataDir, 'desktop overlays'));
  out.push(diskCheck('images', ctx.config.images.dir, 'golden images'));
  for (const s of ctx.config.shares.list) out.push(diskCheck(`share ${s.name}`, s.root, 'users\' folders'));

  // Quarantined desktops and pools without spares.
  const pools = await ctx.store.pools.list();
  let quarantined = 0;
  for (const pool of pools) {
    const desktops = await ctx.store.desktops.listByPool(pool.name);
    for (const d of desktops.filter((x) => x.state === 'error')) {
      quarantined++;
      out.push(fail('resources.quarantine', d.name, `desktop ${d.name} of pool ${pool.name} is quarantined (state error after ${d.failures} failed attempts): ${d.lastError || 'no error recorded'}`, 'Fix the cause named above, then POST /desktops/:id/refresh (rebuild) or DELETE /desktops/:id; the pool makes a new one.', { desktop: d.id, pool: pool.name, failures: d.failures, lastError: d.lastError, since: new Date(d.stateSince).toISOString() }));
    }
    if (pool.deleting || !pool.enabled || pool.maintenance || pool.size.spare === 0) continue;
    const readyFree = desktops.filter((d) => d.state === 'ready' && !d.user).length;
    if (readyFree === 0) out.push(warn('resources.spares', pool.name, `pool ${pool.name} wants ${pool.size.spare} warm spare(s) and has none ready: the next user waits for a desktop to boot (${desktops.length}/${pool.size.max} desktops)`, desktops.length >= pool.size.max ? 'The pool is at its max: raise max (and host capacity) or lower spare.' : 'Look at the pool\'s provisioning desktops and quarantined ones (above); check host capacity.', { pool: pool.name, spare: pool.size.spare, max: pool.size.max, desktops: desktops.length }));
    else out.push(ok('resources.spares', pool.name, `${readyFree} ready spare(s) (wants ${pool.size.spare})`, { pool: pool.name, ready: readyFree, spare: pool.size.spare }));
  }
  if (!quarantined) out.push(ok('resources.quarantine', 'desktops', 'no desktop is quarantined'));

  // GPUs: pools declare emulated graphics only; report what the machine has for later passthrough.
  let dri: string[] = [];
  try {
    dri = fs.readdirSync('/dev/dri').filter((x) => x.startsWith('renderD'));
  } catch {
    // no DRM devices
  }
  const wanted = [...new Set(pools.map((p) => p.resources.graphics))];
  out.push(skipped('resources.gpu', 'broker', `pools declare emulated graphics only (${wanted.join(', ') || 'none'}); no GPU passthrough or vGPU is declared, so none can be missing. This machine has ${dri.length} GPU render node(s)`, { graphics: wanted, renderNodes: dri }));
  return out;
};
