import fsp from 'node:fs/promises';
import type { DesktopSpec, Snapshot } from '../provider.ts';
import { run } from './machine.ts';

// Desktop disks through qemu-img: linked clones (qcow2 overlays on an image's read-only base),
// full clones, sizes, and the internal snapshots stored in a disk.

export class Disks {
  private readonly sizes = new Map<string, { mtimeMs: number; bytes: number }>();

  constructor(private readonly qemuImg: string) {}

  async img(args: string[]): Promise<string> {
    const r = await run(this.qemuImg, args, 600_000);
    if (r.code !== 0) throw new Error(`qemu-img ${args[0]} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
    return r.stdout;
  }

  /** Linked: overlay on base (milliseconds). Full: a copy of base, grown to `bytes` if bigger. */
  async clone(clone: DesktopSpec['clone'], base: string, file: string, bytes: number): Promise<void> {
    if (clone === 'full') {
      await this.img(['convert', '-O', 'qcow2', base, file]);
      if (bytes > (await this.virtualSize(file))) await this.img(['resize', file, String(bytes)]);
    } else {
      await this.img(['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', file, String(bytes)]);
    }
  }

  async createEmpty(file: string, bytes: number): Promise<void> {
    await this.img(['create', '-q', '-f', 'qcow2', file, String(bytes)]);
  }

  /** Virtual size in bytes, cached per file and modification time. */
  async virtualSize(file: string): Promise<number> {
    const st = await fsp.stat(file);
    const cached = this.sizes.get(file);
    if (cached && cached.mtimeMs === st.mtimeMs) return cached.bytes;
    const info = JSON.parse(await this.img(['info', '-U', '--output=json', file])) as { 'virtual-size': number };
    this.sizes.set(file, { mtimeMs: st.mtimeMs, bytes: info['virtual-size'] });
    return info['virtual-size'];
  }

  /** Internal snapshots of a disk; -U reads it while QEMU has it open. */
  async snapshots(file: string): Promise<Snapshot[]> {
    const info = JSON.parse(await this.img(['info', '-U', '--output=json', file])) as {
      snapshots?: { name: string; 'date-sec': number; 'vm-state-size': number }[];
    };
    return (info.snapshots ?? []).map((s) => ({
      name: s.name, createdAt: new Date(s['date-sec'] * 1000).toISOString(), sizeBytes: s['vm-state-size'],
    }));
  }

  /** Offline snapshot operations on a stopped desktop's disk (disk state only). */
  async offlineSnapshot(op: 'create' | 'apply' | 'delete', name: string, file: string): Promise<void> {
    await this.img(['snapshot', op === 'create' ? '-c' : op === 'apply' ? '-a' : '-d', name, file]);
  }
}
