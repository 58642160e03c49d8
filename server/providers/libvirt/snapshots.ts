import type { Snapshot } from '../provider.ts';
import type { LibvirtHostConfig } from './config.ts';
import { LibvirtError, isFailure, type Virsh } from './virsh.ts';

// Internal qcow2 snapshots through libvirt: a running domain's include its memory (revert
// restarts QEMU in the saved state); a stopped domain's are disk-only. Internal snapshots
// block live migration (libvirt refuses it), which the driver reports as such.

export async function listSnapshots(virsh: Virsh, h: LibvirtHostConfig, dom: string): Promise<Snapshot[]> {
  const out = await virsh.run(h, ['snapshot-list', dom]);
  const snaps: Snapshot[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\S+)\s+(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) ([+-]\d{4})/.exec(line);
    if (!m) continue;
    const iso = `${m[2]}T${m[3]}${m[4]!.slice(0, 3)}:${m[4]!.slice(3)}`;
    snaps.push({ name: m[1]!, createdAt: new Date(iso).toISOString() });
  }
  return snaps;
}

export async function createSnapshot(virsh: Virsh, h: LibvirtHostConfig, dom: string, name: string): Promise<Snapshot> {
  if ((await listSnapshots(virsh, h, dom)).some((s) => s.name === name)) {
    throw new LibvirtError('failed', `Snapshot ${name} already exists.`, h.name);
  }
  await virsh.run(h, ['snapshot-create-as', dom, name], { timeoutMs: 300_000, retries: 0 });
  const snap = (await listSnapshots(virsh, h, dom)).find((s) => s.name === name);
  if (!snap) throw new LibvirtError('failed', `Snapshot ${name} was not recorded by libvirt on host ${h.name}.`, h.name);
  return snap;
}

export async function revertSnapshot(virsh: Virsh, h: LibvirtHostConfig, dom: string, name: string): Promise<void> {
  if (!(await listSnapshots(virsh, h, dom)).some((s) => s.name === name)) throw new LibvirtError('no_snapshot', `The desktop has no snapshot ${name}.`, h.name);
  await virsh.run(h, ['snapshot-revert', dom, name], { timeoutMs: 300_000, retries: 0 });
}

export async function deleteSnapshot(virsh: Virsh, h: LibvirtHostConfig, dom: string, name: string): Promise<void> {
  try {
    await virsh.run(h, ['snapshot-delete', dom, name], { timeoutMs: 300_000 });
  } catch (e) {
    if (!isFailure(e, 'no_snapshot')) throw e;
  }
}
