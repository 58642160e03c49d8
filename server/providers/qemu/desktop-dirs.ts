import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { DesktopSpec, InventoryItem, PowerState } from '../provider.ts';
import type { ImageFiles, QemuHostConfig } from './config.ts';
import type { Disks } from './disks.ts';
import {
  type DesktopPaths, type DesktopState, desktopPaths, desktopsDir, isDesktopProcess, killProcess, readPid, readState,
  scanQemuProcesses, writeState,
} from './machine.ts';

// The desktops' directories on the hosts: building one atomically, clearing crash leftovers,
// reading every state file, and the inventory (including what the broker does not know).

export interface QemuInventoryItem extends InventoryItem {
  name?: string;
  pid?: number;
  /** Set for leftovers the broker does not know: a disk without state, or a process without either. */
  orphan?: 'overlay' | 'process';
}

const SOCKET_PATH_MAX = 107;
const MIGRATION_MAX_MS = 15 * 60_000;

export async function allStates(hosts: QemuHostConfig[]): Promise<DesktopState[]> {
  const out: DesktopState[] = [];
  for (const host of hosts) {
    let entries: string[] = [];
    try {
      entries = await fsp.readdir(desktopsDir(host.dataDir));
    } catch {
      continue;
    }
    for (const e of entries) {
      if (e.startsWith('.')) continue;
      const st = await readState(desktopPaths(host.dataDir, e).state).catch(() => undefined);
      if (st) out.push({ ...st, host: host.name });
    }
  }
  return out;
}

export async function ensureDesktopsDir(host: QemuHostConfig): Promise<string> {
  const dir = desktopsDir(host.dataDir);
  try {
    await fsp.mkdir(dir, { recursive: true });
    // Desktops hold their QMP, serial and agent sockets and their agent secrets: the broker's only.
    await fsp.chmod(dir, 0o700);
    await fsp.access(dir, fs.constants.W_OK);
  } catch (e) {
    throw new Error(`Data directory ${host.dataDir} of host ${host.name} is not writable (${(e as NodeJS.ErrnoException).code ?? String(e)}).`);
  }
  return dir;
}

/** Unix socket paths are limited to 108 bytes (with the terminating NUL). */
export function checkSocketPaths(p: DesktopPaths, host: QemuHostConfig): void {
  for (const sock of [p.qmp, p.serial, p.nbd, p.incoming, p.agent, p.qga]) {
    if (Buffer.byteLength(sock) > SOCKET_PATH_MAX) {
      throw new Error(`Data directory ${host.dataDir} of host ${host.name} is too deep: socket path ${sock} is longer than ${SOCKET_PATH_MAX} bytes.`);
    }
  }
}

/** A directory for this id without a state file is a crash leftover: its process and files go. */
export async function clearLeftover(p: DesktopPaths, log: Logger): Promise<void> {
  if (!fs.existsSync(p.dir)) return;
  if (fs.existsSync(p.state) && !fs.existsSync(p.incomingMarker)) throw new Error(`Desktop directory ${p.dir} already exists.`);
  log.warn({ dir: p.dir }, 'removing a leftover desktop directory');
  await killProcess(await readPid(p.pidfile), p.dir);
  await fsp.rm(p.dir, { recursive: true, force: true });
}

/** Builds the desktop in a hidden directory and renames it into place: nothing half-created stays behind. */
export async function buildDesktopDir(spec: DesktopSpec, image: ImageFiles, host: QemuHostConfig, disks: Disks, log: Logger): Promise<void> {
  const final = desktopPaths(host.dataDir, spec.id);
  checkSocketPaths(final, host);
  const root = await ensureDesktopsDir(host);
  await clearLeftover(final, log);
  let tmp: string;
  try {
    tmp = await fsp.mkdtemp(path.join(root, `.${spec.id}.creating-`));
  } catch (e) {
    throw new Error(`Data directory ${host.dataDir} of host ${host.name} is not writable (${(e as NodeJS.ErrnoException).code ?? String(e)}).`);
  }
  try {
    const baseBytes = await disks.virtualSize(image.disk);
    const diskBytes = Math.max(baseBytes, Math.round((spec.resources.diskGiB || 0) * 1024 ** 3));
    await disks.clone(spec.clone, image.disk, path.join(tmp, 'disk.qcow2'), diskBytes);
    const state: DesktopState = { version: 1, spec: withoutSecret({ ...spec, host: host.name }), host: host.name, createdAt: new Date().toISOString(), image, diskBytes };
    if (spec.agentSecret) await writeAgentSecret(path.join(tmp, 'agent.secret'), spec.agentSecret);
    await writeState(path.join(tmp, 'state.json'), state);
    await fsp.rename(tmp, final.dir);
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

type PowerOf = (loc: { host: QemuHostConfig; paths: DesktopPaths; state: DesktopState }) => Promise<PowerState>;

export async function scanInventory(hosts: QemuHostConfig[], powerOf: PowerOf): Promise<QemuInventoryItem[]> {
  const items: QemuInventoryItem[] = [];
  for (const host of hosts) {
    const root = desktopsDir(host.dataDir);
    let entries: string[] = [];
    try {
      entries = await fsp.readdir(root);
    } catch {
      entries = [];
    }
    const procs = scanQemuProcesses(root);
    for (const entry of entries) {
      const p = desktopPaths(host.dataDir, entry);
      const state = entry.startsWith('.') ? undefined : await readState(p.state).catch(() => undefined);
      const pid = state?.pid ?? (await readPid(p.pidfile)) ?? procs.get(entry);
      const alive = isDesktopProcess(pid, p.dir);
      procs.delete(entry);
      // A migration into this host in flight (a leftover of a crashed one is reported as an orphan).
      if (alive && fs.existsSync(p.incomingMarker) && Date.now() - fs.statSync(p.incomingMarker).mtimeMs < MIGRATION_MAX_MS) continue;
      if (state) {
        const power = await powerOf({ host, paths: p, state });
        items.push({ desktopId: entry, host: host.name, power, name: state.spec.name, ...(alive ? { pid } : {}) });
      } else {
        items.push({ desktopId: entry, host: host.name, power: alive ? 'running' : 'stopped', orphan: alive ? 'process' : 'overlay', ...(alive ? { pid } : {}) });
      }
    }
    for (const [entry, pid] of procs) {
      items.push({ desktopId: entry, host: host.name, power: 'running', orphan: 'process', pid });
    }
  }
  return items;
}

/** The agent secret lives only in agent.secret (0600), never in state.json. */
export function withoutSecret(spec: DesktopSpec): DesktopSpec {
  const { agentSecret: _secret, ...rest } = spec;
  return rest;
}

/** Writes the per-desktop agent secret QEMU hands to the guest through fw_cfg (0600). */
export async function writeAgentSecret(file: string, secret: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, secret, { mode: 0o600 });
  await fsp.chmod(tmp, 0o600);
  await fsp.rename(tmp, file);
}
