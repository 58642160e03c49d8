import type { Logger } from 'pino';
import type { HostInfo } from '../provider.ts';
import type { LibvirtHostConfig } from './config.ts';
import type { OwnedDomain } from './inventory.ts';
import { isFailure, type Virsh } from './virsh.ts';

// A host's size as libvirt reports it (nodeinfo: CPUs and memory; freecell: free memory now),
// with the configured overcommit factors applied.

export interface NodeCapacity {
  /** Physical CPUs and memory. */
  cpus: number;
  memoryMiB: number;
  /** Memory free on the host right now (all NUMA cells). */
  freeMiB: number;
}

export async function nodeCapacity(virsh: Virsh, h: LibvirtHostConfig): Promise<NodeCapacity> {
  const info = await virsh.run(h, ['nodeinfo']);
  const cpus = Number(/^CPU\(s\):\s*(\d+)/m.exec(info)?.[1] ?? 0);
  const memKiB = Number(/^Memory size:\s*(\d+)/m.exec(info)?.[1] ?? 0);
  const free = await virsh.run(h, ['freecell', '--all']);
  const freeKiB = Number(/^Total:\s*(\d+)/m.exec(free)?.[1] ?? /(\d+)\s*KiB/.exec(free)?.[1] ?? 0);
  return { cpus, memoryMiB: Math.floor(memKiB / 1024), freeMiB: Math.floor(freeKiB / 1024) };
}

export function withOvercommit(h: LibvirtHostConfig, n: NodeCapacity): { vcpu: number; memoryMiB: number } {
  return {
    vcpu: Math.floor(n.cpus * (h.overcommit?.cpu ?? 1)),
    memoryMiB: Math.floor(n.memoryMiB * (h.overcommit?.memory ?? 1)),
  };
}

/** The domain type for a host: kvm when its libvirt offers KVM (accel: auto), else qemu (TCG). */
export async function probeVirtType(virsh: Virsh, h: LibvirtHostConfig, log: Logger): Promise<'kvm' | 'qemu'> {
  if (h.accel === 'tcg') return 'qemu';
  if (h.accel === 'kvm') return 'kvm';
  try {
    await virsh.run(h, ['domcapabilities', '--virttype', 'kvm']);
    return 'kvm';
  } catch (e) {
    if (isFailure(e, 'unreachable', 'timeout')) throw e;
    log.warn({ host: h.name }, 'KVM is not available on this libvirt host; its desktops run under TCG (software emulation, slow)');
    return 'qemu';
  }
}

/**
 * A host's capacity (after overcommit) and what the broker's domains (and desktops being made)
 * use of it; an unreachable host has no capacity and its last known desktops.
 */
export async function hostInfo(
  virsh: Virsh, h: LibvirtHostConfig, reserved: { vcpu: number; memoryMiB: number }[],
  scan: () => Promise<OwnedDomain[]>, lastSeen: () => OwnedDomain[],
): Promise<HostInfo> {
  const used = { vcpu: 0, memoryMiB: 0, desktops: 0 };
  const add = (d: { vcpu: number; memoryMiB: number }) => {
    used.vcpu += d.vcpu;
    used.memoryMiB += d.memoryMiB;
    used.desktops += 1;
  };
  reserved.forEach(add);
  try {
    const capacity = withOvercommit(h, await nodeCapacity(virsh, h));
    (await scan()).forEach(add);
    return { name: h.name, maintenance: !!h.maintenance, capacity, used, reachable: true };
  } catch (e) {
    if (!isFailure(e, 'unreachable', 'timeout')) throw e;
    lastSeen().forEach(add);
    return { name: h.name, maintenance: !!h.maintenance, capacity: { vcpu: 0, memoryMiB: 0 }, used, reachable: false };
  }
}
