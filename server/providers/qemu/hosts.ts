import type { DesktopResources } from '../provider.ts';
import type { QemuHostConfig } from './config.ts';

// Host capacity with overcommit, and placement (breadth-first: least loaded; depth-first:
// fill hosts in configured order).

export interface HostUsage {
  vcpu: number;
  memoryMiB: number;
  desktops: number;
}

export interface HostStatus {
  name: string;
  dataDir: string;
  consoleAddress: string;
  maintenance: boolean;
  /** Capacity after overcommit. */
  capacity: { vcpu: number; memoryMiB: number };
  used: HostUsage;
}

export function effectiveCapacity(h: QemuHostConfig): { vcpu: number; memoryMiB: number } {
  return {
    vcpu: Math.floor(h.capacity.vcpu * (h.overcommit?.cpu ?? 1)),
    memoryMiB: Math.floor(h.capacity.memoryMiB * (h.overcommit?.memory ?? 1)),
  };
}

export function fits(h: QemuHostConfig, used: HostUsage, need: Pick<DesktopResources, 'vcpu' | 'memoryMiB'>): boolean {
  const cap = effectiveCapacity(h);
  return used.vcpu + need.vcpu <= cap.vcpu && used.memoryMiB + need.memoryMiB <= cap.memoryMiB;
}

function load(h: QemuHostConfig, used: HostUsage): number {
  const cap = effectiveCapacity(h);
  return Math.max(cap.vcpu ? used.vcpu / cap.vcpu : 1, cap.memoryMiB ? used.memoryMiB / cap.memoryMiB : 1);
}

function describe(h: QemuHostConfig, used: HostUsage): string {
  if (h.maintenance) return `${h.name}: in maintenance`;
  const cap = effectiveCapacity(h);
  return `${h.name}: ${used.vcpu}/${cap.vcpu} vCPU, ${used.memoryMiB}/${cap.memoryMiB} MiB used`;
}

/**
 * Picks a host for a desktop needing `need`. `preferred` must then be that host. Throws an
 * Error that names every host's state when none has room.
 */
export function placeDesktop(
  hosts: QemuHostConfig[],
  usage: Map<string, HostUsage>,
  need: Pick<DesktopResources, 'vcpu' | 'memoryMiB'>,
  policy: 'breadth' | 'depth',
  preferred?: string,
): QemuHostConfig {
  const empty: HostUsage = { vcpu: 0, memoryMiB: 0, desktops: 0 };
  const needText = `${need.vcpu} vCPU, ${need.memoryMiB} MiB`;
  if (preferred) {
    const h = hosts.find((x) => x.name === preferred);
    if (!h) throw new Error(`Host ${preferred} is not configured (known hosts: ${hosts.map((x) => x.name).join(', ')}).`);
    if (h.maintenance) throw new Error(`Host ${preferred} is in maintenance and takes no new desktops.`);
    const used = usage.get(h.name) ?? empty;
    if (!fits(h, used, need)) throw new Error(`Not enough capacity on host ${describe(h, used)}; the desktop needs ${needText}.`);
    return h;
  }
  const candidates = hosts.filter((h) => !h.maintenance && fits(h, usage.get(h.name) ?? empty, need));
  if (candidates.length === 0) {
    const states = hosts.map((h) => describe(h, usage.get(h.name) ?? empty)).join('; ');
    throw new Error(`Not enough capacity on any host for a desktop needing ${needText} (${states}).`);
  }
  if (policy === 'depth') return candidates[0] as QemuHostConfig;
  return candidates.reduce((best, h) => (load(h, usage.get(h.name) ?? empty) < load(best, usage.get(best.name) ?? empty) ? h : best));
}
