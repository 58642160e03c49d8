import type { DesktopResources, HostInfo } from '../provider.ts';
import { LibvirtError } from './virsh.ts';

// Host choice for a new desktop among the hosts that answered, are not in maintenance and have
// room (breadth: least loaded; depth: first in configured order).

export function placeOn(hosts: HostInfo[], need: Pick<DesktopResources, 'vcpu' | 'memoryMiB'>, policy: 'breadth' | 'depth', preferred?: string): string {
  const needText = `${need.vcpu} vCPU, ${need.memoryMiB} MiB`;
  const fits = (h: HostInfo) => h.used.vcpu + need.vcpu <= h.capacity.vcpu && h.used.memoryMiB + need.memoryMiB <= h.capacity.memoryMiB;
  const describe = (h: HostInfo) => {
    if (h.reachable === false) return `${h.name}: unreachable`;
    if (h.maintenance) return `${h.name}: in maintenance`;
    return `${h.name}: ${h.used.vcpu}/${h.capacity.vcpu} vCPU, ${h.used.memoryMiB}/${h.capacity.memoryMiB} MiB used`;
  };
  if (preferred) {
    const h = hosts.find((x) => x.name === preferred);
    if (!h) throw new LibvirtError('failed', `Host ${preferred} is not configured (known hosts: ${hosts.map((x) => x.name).join(', ')}).`, preferred);
    if (h.reachable === false) throw new LibvirtError('unreachable', `Host ${preferred} is unreachable and takes no new desktops.`, preferred);
    if (h.maintenance) throw new LibvirtError('failed', `Host ${preferred} is in maintenance and takes no new desktops.`, preferred);
    if (!fits(h)) throw new LibvirtError('failed', `Not enough capacity on host ${describe(h)}; the desktop needs ${needText}.`, preferred);
    return h.name;
  }
  const ok = hosts.filter((h) => h.reachable !== false && !h.maintenance && fits(h));
  if (ok.length === 0) {
    throw new LibvirtError('failed', `Not enough capacity on any host for a desktop needing ${needText} (${hosts.map(describe).join('; ')}).`, '');
  }
  if (policy === 'depth') return ok[0]!.name;
  const load = (h: HostInfo) => Math.max(h.capacity.vcpu ? h.used.vcpu / h.capacity.vcpu : 1, h.capacity.memoryMiB ? h.used.memoryMiB / h.capacity.memoryMiB : 1);
  return ok.reduce((best, h) => (load(h) < load(best) ? h : best)).name;
}
