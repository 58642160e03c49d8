import fsp from 'node:fs/promises';
import type { ImageFiles } from '../qemu/config.ts';
import type { LibvirtHostConfig } from './config.ts';
import type { BootFiles } from './domain-xml.ts';
import { LibvirtError, isFailure, type Virsh } from './virsh.ts';

// Volumes in a host's storage pool: image versions (uploaded once per host with vol-upload,
// or referenced where an operator already put them under the same name), and each desktop's
// disk (a linked clone: qcow2 with the image as backing volume; or a full copy).

const UPLOAD_TIMEOUT_MS = 30 * 60_000;

export function desktopVolume(id: string): string {
  return `vdi-${id}.qcow2`;
}

/** The desktop id of a volume named by desktopVolume(), if it is one. */
export function volumeDesktop(vol: string): string | undefined {
  const m = /^vdi-(?!image-)(.+)\.qcow2$/.exec(vol);
  return m?.[1];
}

export function imageVolumes(ref: string): { disk: string; kernel: string; initrd: string } {
  const base = `vdi-image-${ref.replace(/[^A-Za-z0-9_.-]/g, '-')}`;
  return { disk: `${base}.qcow2`, kernel: `${base}.vmlinuz`, initrd: `${base}.initrd` };
}

/** Virtual size of a qcow2 file (big-endian u64 at offset 24 of its header). */
export async function qcow2VirtualSize(file: string): Promise<number> {
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.alloc(32);
    await fh.read(buf, 0, 32, 0);
    if (buf.readUInt32BE(0) !== 0x514649fb) throw new Error(`${file} is not a qcow2 image.`);
    return Number(buf.readBigUInt64BE(24));
  } finally {
    await fh.close();
  }
}

export interface ImageOnHost {
  disk: string;
  virtualSize: number;
  boot: BootFiles;
}

export class Volumes {
  constructor(private readonly virsh: Virsh) {}

  /** Fails clearly when the host's storage pool is missing or not running. */
  async checkPool(h: LibvirtHostConfig): Promise<void> {
    let info: string;
    try {
      info = await this.virsh.run(h, ['pool-info', h.storagePool]);
    } catch (e) {
      if (isFailure(e, 'no_pool')) throw new LibvirtError('no_pool', `Storage pool ${h.storagePool} does not exist on host ${h.name}; define and start it (see docs/libvirt.md).`, h.name);
      throw e;
    }
    if (!/^State:\s+running/m.test(info)) throw new LibvirtError('no_pool', `Storage pool ${h.storagePool} on host ${h.name} is not running (virsh pool-start ${h.storagePool}).`, h.name);
  }

  async exists(h: LibvirtHostConfig, vol: string): Promise<boolean> {
    try {
      await this.virsh.run(h, ['vol-key', '--pool', h.storagePool, vol]);
      return true;
    } catch (e) {
      if (isFailure(e, 'no_volume')) return false;
      throw e;
    }
  }

  async path(h: LibvirtHostConfig, vol: string): Promise<string> {
    return (await this.virsh.run(h, ['vol-path', '--pool', h.storagePool, vol])).trim();
  }

  /** The image version in the host's pool: referenced when there, uploaded otherwise. */
  async ensureImage(h: LibvirtHostConfig, ref: string, files: ImageFiles): Promise<ImageOnHost> {
    await this.checkPool(h);
    const names = imageVolumes(ref);
    const virtualSize = await qcow2VirtualSize(files.disk);
    await this.upload(h, names.disk, files.disk);
    const boot: BootFiles = {};
    if (files.kernel) {
      await this.upload(h, names.kernel, files.kernel);
      boot.kernel = await this.path(h, names.kernel);
      if (files.initrd) {
        await this.upload(h, names.initrd, files.initrd);
        boot.initrd = await this.path(h, names.initrd);
      }
      if (files.cmdline) boot.cmdline = files.cmdline;
    }
    return { disk: names.disk, virtualSize, boot };
  }

  private async upload(h: LibvirtHostConfig, vol: string, file: string): Promise<void> {
    if (await this.exists(h, vol)) return;
    // On a shared pool another host may have uploaded it: this host's view is refreshed first.
    await this.virsh.run(h, ['pool-refresh', h.storagePool]);
    if (await this.exists(h, vol)) return;
    const size = (await fsp.stat(file)).size;
    await this.virsh.run(h, ['vol-create-as', h.storagePool, vol, String(size), '--format', 'raw']);
    try {
      await this.virsh.run(h, ['vol-upload', '--pool', h.storagePool, vol, file], { timeoutMs: UPLOAD_TIMEOUT_MS, retries: 0 });
    } catch (e) {
      // A half-uploaded base must not be taken for a good one by the next call.
      await this.virsh.run(h, ['vol-delete', '--pool', h.storagePool, vol]).catch(() => undefined);
      throw e;
    }
    // libvirt probes the uploaded content (qcow2) on refresh.
    await this.virsh.run(h, ['pool-refresh', h.storagePool]);
  }

  /** The desktop's disk: a linked clone of the image or a full copy, at least `bytes` large. */
  async createDisk(h: LibvirtHostConfig, vol: string, clone: 'linked' | 'full', image: ImageOnHost, bytes: number): Promise<void> {
    if (await this.exists(h, vol)) return;
    const size = String(Math.max(bytes, image.virtualSize));
    if (clone === 'linked') {
      await this.virsh.run(h, ['vol-create-as', h.storagePool, vol, size, '--format', 'qcow2', '--backing-vol', image.disk, '--backing-vol-format', 'qcow2'], { retries: 0 });
      return;
    }
    await this.virsh.run(h, ['vol-clone', '--pool', h.storagePool, image.disk, vol], { timeoutMs: UPLOAD_TIMEOUT_MS, retries: 0 });
    await this.virsh.run(h, ['pool-refresh', h.storagePool]);
    if (bytes > image.virtualSize) await this.virsh.run(h, ['vol-resize', '--pool', h.storagePool, vol, size]);
  }

  async remove(h: LibvirtHostConfig, vol: string): Promise<boolean> {
    try {
      await this.virsh.run(h, ['vol-delete', '--pool', h.storagePool, vol]);
      return true;
    } catch (e) {
      if (isFailure(e, 'no_volume')) return false;
      throw e;
    }
  }

  /** Volume names in the host's pool. */
  async list(h: LibvirtHostConfig): Promise<string[]> {
    const out = await this.virsh.run(h, ['vol-list', '--pool', h.storagePool]);
    // virsh -q prints no table header.
    return out.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n && !/^-+$/.test(n));
  }
}
