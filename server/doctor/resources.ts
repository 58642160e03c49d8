// Resources: hosts' CPU and memory against capacity and overcommit, disk space for overlays,
// images and users' folders, desktops quarantined (state error) and why, pools with no warm
// spare, and GPUs declared by libvirt domains (<hostdev>) against the devices their hosts have.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Virsh } from '../providers/libvirt/virsh.ts';
import { type CheckFamily, type CheckResult, type DoctorContext, fail, ok, skipped, warn } from './types.ts';
import { type DeclaredDevice, type DevicePresence, declaredDevices, devicePresence, domainXmls, isGpuClass, localMdevTypes } from './gpu.ts';
import { hostRoute } from './host-shell.ts';

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

/** Every host device a libvirt domain declares, against what its host has (docs/doctor.md, resources.gpu). */
export async function declaredGpuChecks(ctx: DoctorContext, sys = '/sys'): Promise<{ results: CheckResult[]; declared: number; hosts: number }> {
  const virsh = new Virsh('virsh', ctx.timeoutMs);
  const results: CheckResult[] = [];
  let declared = 0;
  let hosts = 0;
  const jobs = ctx.config.providers.flatMap((p) => (p.kind === 'libvirt' ? p.hosts.map((h) => ({ p, h })) : []));
  await Promise.all(jobs.map(async ({ p, h }) => {
    let doms;
    try {
      // The persistent definition is the declaration (a stopped desktop fails at its next start).
      doms = await domainXmls(virsh, h, ctx.timeoutMs, true);
    } catch {
      return; // unreachable hosts are reported by the reachability and KVM checks
    }
    hosts++;
    const local = hostRoute(h.uri) === 'local';
    await Promise.all(doms.flatMap(({ name, xml }) => declaredDevices(xml).map(async (d) => {
      declared++;
      const managedBy = /<vdi:desktop\b/.test(xml) ? 'desktop' : 'unmanaged VM';
      const target = `${name} (${p.name}/${h.name})`;
      const what = d.type === 'pci' ? `PCI device ${d.address}` : `mediated device (vGPU) ${d.uuid}${d.model ? ` (${d.model})` : ''}`;
      let pr: DevicePresence;
      try {
        pr = await devicePresence(virsh, h, d, ctx.timeoutMs, sys);
      } catch (e) {
        results.push(warn('resources.gpu', target, `cannot tell whether host ${h.name} has the ${what} that ${managedBy} ${name} declares: ${(e as Error).message}`, 'Check the broker reaches libvirt on the host (see the reach and kvm checks).', { host: `${p.name}/${h.name}`, domain: name, device: d }));
        return;
      }
      const details: Record<string, unknown> = { host: `${p.name}/${h.name}`, domain: name, device: d, ...pr };
      if (!pr.present) {
        if (d.type === 'mdev' && local) details.mdevTypes = localMdevTypes(sys);
        results.push(fail('resources.gpu', target, `${managedBy} ${name} declares ${what}, which host ${h.name} does not have: it fails to start there ("device not found")${d.type === 'pci' ? ', or the GPU sits at another PCI address on this host' : ''}`, gpuFix(d, h.name), details));
        return;
      }
      const kind = d.type === 'mdev' ? 'vGPU' : isGpuClass(pr.pciClass) ? 'GPU' : 'PCI device (not a display controller)';
      // managed='no': libvirt leaves the binding to the admin, so the device must sit on vfio-pci already.
      if (d.type === 'pci' && !d.managed && pr.driver !== 'vfio-pci') {
        results.push(warn('resources.gpu', target, `${managedBy} ${name} declares ${what} (${kind}, present) with managed='no', but the host binds it to ${pr.driver ?? 'no driver'}, not vfio-pci: the domain cannot start with it`, `Bind ${d.address} to vfio-pci on host ${h.name} (driverctl set-override ${d.address} vfio-pci), or set managed='yes' in the domain's <hostdev> so libvirt does it.`, details));
        return;
      }
      results.push(ok('resources.gpu', target, `${managedBy} ${name} declares ${what}: present on host ${h.name} (${kind}${pr.driver ? `, driver ${pr.driver}` : ''}${pr.mdevType ? `, type ${pr.mdevType}` : ''})`, details));
    })));
  }));
  return { results, declared, hosts };
}

function gpuFix(d: DeclaredDevice, host: string): string {
  if (d.type === 'pci') return `List the host's devices (\`lspci -D\` on ${host}, or \`virsh nodedev-list --cap pci\`) and correct the address in the domain's <hostdev>; or move the desktop to the host that has this GPU; or remove the <hostdev> if the desktop should run without it.`;
  return `Create the mediated device on ${host} (echo ${d.uuid} > /sys/class/mdev_bus/<parent>/mdev_supported_types/<type>/create, or \`mdevctl start -u ${d.uuid} -p <parent> -t <type>\`; \`mdevctl types\` lists what the GPU offers), and make it persistent with \`mdevctl define\`; or remove the <hostdev> from the domain.`;
}

export const resourceChecks: CheckFamily = async (ctx) => {
  const out: CheckResult[] = [];
  // Declared GPUs are looked up on the libvirt hosts while the rest is measured.
  const gpusAsked = declaredGpuChecks(ctx);
  gpusAsked.catch(() => undefined);
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

  // GPUs: pool specs declare emulated graphics only; passthrough GPUs and vGPUs are declared in
  // libvirt domains (<hostdev>), checked against their host's devices.
  let dri: string[] = [];
  try {
    dri = fs.readdirSync('/dev/dri').filter((x) => x.startsWith('renderD'));
  } catch {
    // no DRM devices
  }
  const wanted = [...new Set(pools.map((p) => p.resources.graphics))];
  const gpus = await gpusAsked;
  out.push(...gpus.results);
  if (!gpus.declared) out.push(skipped('resources.gpu', 'broker', `no GPU is declared: pools use emulated graphics (${wanted.join(', ') || 'none'}) and no libvirt domain on the ${gpus.hosts} reachable libvirt host(s) has a passthrough or vGPU device (<hostdev>), so none can be missing. This machine has ${dri.length} GPU render node(s)`, { graphics: wanted, renderNodes: dri, libvirtHosts: gpus.hosts }));
  return out;
};
