import { BrokerError } from '../../errors.ts';
import type { PowerState } from '../provider.ts';
import type { LibvirtHostConfig } from './config.ts';
import { type DesktopMeta, VDI_NS, parseMetadata } from './domain-xml.ts';
import { isFailure, type Virsh } from './virsh.ts';

// The domains of a host that carry the broker's metadata (and so are the broker's), with their
// power state and size. Domains without it are never reported, changed or removed.

export interface OwnedDomain {
  uuid: string;
  name: string;
  meta: DesktopMeta;
  power: PowerState;
  vcpu: number;
  memoryMiB: number;
}

export function powerOf(state: string): PowerState {
  const s = state.trim().toLowerCase();
  if (s === 'running' || s === 'in shutdown' || s === 'blocked' || s === 'idle') return 'running';
  if (s === 'paused' || s === 'pmsuspended') return 'paused';
  return 'stopped';
}

function field(info: string, name: string): string {
  return new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '';
}

/** The broker's metadata of a domain, or undefined when it has none (a domain we do not own). */
export async function metadataOf(virsh: Virsh, h: LibvirtHostConfig, dom: string): Promise<DesktopMeta | undefined> {
  try {
    return parseMetadata(await virsh.run(h, ['metadata', dom, '--uri', VDI_NS]));
  } catch (e) {
    if (isFailure(e, 'failed', 'no_domain')) return undefined; // "metadata not found" or gone meanwhile
    throw e;
  }
}

export async function domainInfo(virsh: Virsh, h: LibvirtHostConfig, dom: string): Promise<{ name: string; power: PowerState; vcpu: number; memoryMiB: number }> {
  const info = await virsh.run(h, ['dominfo', dom]);
  return {
    name: field(info, 'Name'),
    power: powerOf(field(info, 'State')),
    vcpu: Number(field(info, 'CPU\\(s\\)')) || 0,
    memoryMiB: Math.round((Number(field(info, 'Max memory').split(/\s+/)[0]) || 0) / 1024),
  };
}

export async function ownedDomains(virsh: Virsh, h: LibvirtHostConfig, provider: string): Promise<OwnedDomain[]> {
  const uuids = (await virsh.run(h, ['list', '--all', '--uuid'])).split('\n').map((s) => s.trim()).filter(Boolean);
  const out: OwnedDomain[] = [];
  for (const uuid of uuids) {
    const meta = await metadataOf(virsh, h, uuid);
    // Another broker's desktops (another provider name) are not ours either.
    if (!meta || meta.provider !== provider) continue;
    try {
      out.push({ uuid, meta, ...(await domainInfo(virsh, h, uuid)) });
    } catch (e) {
      if (!isFailure(e, 'no_domain')) throw e;
    }
  }
  return out;
}

/** A domain with the desktop's name that is not this desktop's is never touched: creation is refused. */
export async function refuseForeignName(virsh: Virsh, h: LibvirtHostConfig, name: string): Promise<void> {
  try {
    await virsh.run(h, ['domuuid', name]);
  } catch (e) {
    if (isFailure(e, 'no_domain')) return;
    throw e;
  }
  const meta = await metadataOf(virsh, h, name);
  const owner = meta ? `desktop ${meta.id} of provider ${meta.provider}` : 'a machine the broker does not own';
  throw new BrokerError('conflict', `A domain named ${name} already exists on host ${h.name} (${owner}); it is left untouched. Rename the pool's desktops or the domain.`);
}
