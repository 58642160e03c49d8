import type { DesktopSpec } from '../provider.ts';
import type { DesktopState } from './machine.ts';

// Input checks of the QEMU driver: what reaches a QEMU command line or a path is checked here.

export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const SNAP_RE = /^(?!\d+$)[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function validateSpec(spec: DesktopSpec): void {
  if (!ID_RE.test(spec.id)) throw new Error(`Desktop id "${spec.id}" is not valid (letters, digits, . _ -; at most 64).`);
  if (!NAME_RE.test(spec.name)) throw new Error(`Desktop name "${spec.name}" is not valid (letters, digits, . _ -; at most 63).`);
  if (!MAC_RE.test(spec.mac)) throw new Error(`MAC address "${spec.mac}" is not valid.`);
  if (parseInt(spec.mac.slice(0, 2), 16) & 1) throw new Error(`MAC address ${spec.mac} is a multicast address.`);
  const r = spec.resources;
  if (!Number.isInteger(r.vcpu) || r.vcpu < 1 || r.vcpu > 64) throw new Error(`vCPU count ${r.vcpu} is not valid (1-64).`);
  if (!Number.isInteger(r.memoryMiB) || r.memoryMiB < 64) throw new Error(`Memory ${r.memoryMiB} MiB is not valid (at least 64).`);
  if (spec.clone !== 'linked' && spec.clone !== 'full') throw new Error(`Clone type "${String(spec.clone)}" is not valid.`);
}

/** Two desktops with the same name or MAC break DHCP, DNS and the helpdesk's view. */
export function checkDuplicates(spec: DesktopSpec, states: DesktopState[]): void {
  for (const s of states) {
    if (s.spec.id === spec.id) continue;
    if (s.spec.name === spec.name) throw new Error(`Desktop name ${spec.name} is already used by desktop ${s.spec.id}.`);
    if (s.spec.mac.toLowerCase() === spec.mac.toLowerCase()) throw new Error(`MAC address ${spec.mac} is already used by desktop ${s.spec.id}.`);
  }
}

export function checkSnapshotName(name: string): void {
  if (!SNAP_RE.test(name)) throw new Error(`Snapshot name "${name}" is not valid (letters, digits, . _ -; not only digits).`);
}
