// GPUs declared vs present: a libvirt domain (a desktop of the broker or a VM beside it) declares
// host devices in its <hostdev> elements — a PCI device passed through (a whole GPU) or a
// mediated device (a vGPU slice). The doctor checks each one exists on the domain's host: in sysfs
// for a host on this machine, through libvirt's node devices for a remote one. A missing device
// makes the domain fail to start ("Device ... not found").
import fs from 'node:fs';
import path from 'node:path';
import type { LibvirtProviderConfig } from '../config/schema.ts';
import { Virsh } from '../providers/libvirt/virsh.ts';
import { hostRoute } from './host-shell.ts';

export type DeclaredDevice =
  | { type: 'pci'; address: string; managed: boolean }
  | { type: 'mdev'; uuid: string; model?: string };

const attr = (tag: string, name: string) => new RegExp(`\\b${name}=(["'])([^"']*)\\1`).exec(tag)?.[2];

/** PCI address as sysfs names it (0000:01:00.0) from libvirt's hex attributes. */
export function pciAddress(domain: string, bus: string, slot: string, fn: string): string {
  const h = (v: string, w: number) => parseInt(v, v.startsWith('0x') ? 16 : 10).toString(16).padStart(w, '0');
  return `${h(domain, 4)}:${h(bus, 2)}:${h(slot, 2)}.${parseInt(fn, fn.startsWith('0x') ? 16 : 10).toString(16)}`;
}

/** The host devices a domain's XML declares (the <source> of each <hostdev>; the guest-side <address> is not the host's). */
export function declaredDevices(xml: string): DeclaredDevice[] {
  const out: DeclaredDevice[] = [];
  for (const m of xml.matchAll(/<hostdev\b([^>]*)>([\s\S]*?)<\/hostdev>/g)) {
    const open = m[1]!;
    const source = /<source\b[^>]*>([\s\S]*?)<\/source>/.exec(m[2]!)?.[1] ?? '';
    const addr = /<address\b[^>]*\/?>/.exec(source)?.[0];
    if (!addr) continue;
    const type = attr(open, 'type');
    if (type === 'pci') {
      const [d, b, s, f] = ['domain', 'bus', 'slot', 'function'].map((k) => attr(addr, k));
      if (b && s && f) out.push({ type: 'pci', address: pciAddress(d ?? '0', b, s, f), managed: attr(open, 'managed') === 'yes' });
    } else if (type === 'mdev') {
      const uuid = attr(addr, 'uuid');
      const model = attr(open, 'model');
      if (uuid) out.push({ type: 'mdev', uuid: uuid.toLowerCase(), ...(model ? { model } : {}) });
    }
  }
  return out;
}

/** What the host has at a declared device. */
export interface DevicePresence {
  present: boolean;
  /** PCI class (0x030000: VGA, 0x030200: 3D controller; 0x03....: a GPU). */
  pciClass?: string;
  /** Driver bound now (vfio-pci for passthrough; libvirt binds it itself when managed='yes'). */
  driver?: string;
  iommuGroup?: string;
  /** mdev: its type and parent device. */
  mdevType?: string;
  parent?: string;
  via: 'sysfs' | 'libvirt';
}

const readLink = (p: string) => {
  try {
    return path.basename(fs.readlinkSync(p));
  } catch {
    return undefined;
  }
};
const readText = (p: string) => {
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch {
    return undefined;
  }
};

/** A PCI device of this machine: /sys/bus/pci/devices/<address>. */
export function localPci(address: string, sys = '/sys'): DevicePresence {
  const dir = path.join(sys, 'bus/pci/devices', address);
  if (!fs.existsSync(dir)) return { present: false, via: 'sysfs' };
  const cls = readText(path.join(dir, 'class'));
  const driver = readLink(path.join(dir, 'driver'));
  const group = readLink(path.join(dir, 'iommu_group'));
  return { present: true, via: 'sysfs', ...(cls ? { pciClass: cls } : {}), ...(driver ? { driver } : {}), ...(group ? { iommuGroup: group } : {}) };
}

/** A mediated device of this machine: /sys/bus/mdev/devices/<uuid>. */
export function localMdev(uuid: string, sys = '/sys'): DevicePresence {
  const dir = path.join(sys, 'bus/mdev/devices', uuid);
  if (!fs.existsSync(dir)) return { present: false, via: 'sysfs' };
  const type = readLink(path.join(dir, 'mdev_type'));
  let parent: string | undefined;
  try {
    parent = path.basename(path.dirname(fs.realpathSync(dir)));
  } catch {
    // a device removed while we look
  }
  return { present: true, via: 'sysfs', ...(type ? { mdevType: type } : {}), ...(parent ? { parent } : {}) };
}

/** A directory's entries; none when it is missing or unreadable (no such bus on this machine). */
function entries(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** The vGPU types this machine can create (/sys/class/mdev_bus/<parent>/mdev_supported_types). */
export function localMdevTypes(sys = '/sys'): { parent: string; type: string; name?: string; available?: number }[] {
  const bus = path.join(sys, 'class/mdev_bus');
  return entries(bus).flatMap((parent) => {
    const dir = path.join(bus, parent, 'mdev_supported_types');
    return entries(dir).map((type) => {
      const name = readText(path.join(dir, type, 'name'));
      const available = Number(readText(path.join(dir, type, 'available_instances')));
      return { parent, type, ...(name ? { name } : {}), ...(Number.isFinite(available) ? { available } : {}) };
    });
  });
}

/** libvirt's node device name of a PCI address (pci_0000_01_00_0). */
export const nodedevName = (address: string) => `pci_${address.replace(/[:.]/g, '_')}`;

/** A PCI device of a remote host, from libvirt's node devices. */
export async function remotePci(virsh: Virsh, h: LibvirtProviderConfig['hosts'][number], address: string, timeoutMs: number): Promise<DevicePresence> {
  let xml: string;
  try {
    xml = await virsh.run(h, ['nodedev-dumpxml', nodedevName(address)], { timeoutMs, retries: 0 });
  } catch (e) {
    if (/not found|could not find matching device/i.test((e as Error).message)) return { present: false, via: 'libvirt' };
    throw e;
  }
  const cls = /<class>([^<]+)<\/class>/.exec(xml)?.[1];
  const driver = /<driver>\s*<name>([^<]+)<\/name>/.exec(xml)?.[1];
  const group = /<iommuGroup\b[^>]*\bnumber=(["'])(\d+)\1/.exec(xml)?.[2];
  return { present: true, via: 'libvirt', ...(cls ? { pciClass: cls } : {}), ...(driver ? { driver } : {}), ...(group ? { iommuGroup: group } : {}) };
}

/** A mediated device of a remote host (libvirt names them mdev_<uuid with _>[_<parent>]). */
export async function remoteMdev(virsh: Virsh, h: LibvirtProviderConfig['hosts'][number], uuid: string, timeoutMs: number): Promise<DevicePresence> {
  const names = await virsh.run(h, ['nodedev-list', '--cap', 'mdev'], { timeoutMs, retries: 0 });
  const want = `mdev_${uuid.replace(/-/g, '_')}`;
  return { present: names.split('\n').some((n) => n.trim().toLowerCase().startsWith(want)), via: 'libvirt' };
}

/** Presence of a declared device on a libvirt host: sysfs for this machine, libvirt otherwise. */
export async function devicePresence(virsh: Virsh, h: LibvirtProviderConfig['hosts'][number], d: DeclaredDevice, timeoutMs: number, sys = '/sys'): Promise<DevicePresence> {
  const local = hostRoute(h.uri) === 'local';
  if (d.type === 'pci') return local ? localPci(d.address, sys) : remotePci(virsh, h, d.address, timeoutMs);
  return local ? localMdev(d.uuid, sys) : remoteMdev(virsh, h, d.uuid, timeoutMs);
}

/** Every domain of a libvirt host with its XML (persistent config for defined ones). */
export async function domainXmls(virsh: Virsh, h: LibvirtProviderConfig['hosts'][number], timeoutMs: number, inactive = false): Promise<{ name: string; xml: string }[]> {
  const names = (await virsh.run(h, ['list', '--all', '--name'], { timeoutMs, retries: 0 })).split('\n').map((x) => x.trim()).filter(Boolean);
  const out: { name: string; xml: string }[] = [];
  await Promise.all(names.map(async (name) => {
    try {
      out.push({ name, xml: await virsh.run(h, ['dumpxml', ...(inactive ? ['--inactive'] : []), name], { timeoutMs, retries: 0 }) });
    } catch {
      // the domain went away between the list and the dump
    }
  }));
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export const isGpuClass = (cls: string | undefined) => !!cls && /^0x03/i.test(cls);
