import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { DesktopSpec } from '../provider.ts';

// Configuration shapes of the QEMU driver, and the directory-based image resolver.

export interface QemuHostConfig {
  /** Host name pools and the helpdesk see. */
  name: string;
  /** Where this host keeps its desktops (overlays, sockets, state files). */
  dataDir: string;
  /** Address consoles (VNC) listen on; only the broker and the gateway connect. */
  consoleAddress?: string;
  capacity: { vcpu: number; memoryMiB: number };
  /** Factors on capacity (1 = no overcommit). */
  overcommit?: { cpu?: number; memory?: number };
  /** A host in maintenance takes no new desktops (running ones stay until migrated away). */
  maintenance?: boolean;
  /** First VNC display number tried (port 5900 + display); QEMU takes the next free one. */
  vncDisplayBase?: number;
}

export interface ImageFiles {
  /** Direct kernel boot (the demo image). Without a kernel the VM boots its disk through the BIOS (any qcow2: Ubuntu, Windows). */
  kernel?: string;
  initrd?: string;
  /** qcow2 base disk that linked clones point at (read-only). */
  disk: string;
  /** Kernel command line; the driver appends vdi.name=<desktop name>. */
  cmdline?: string;
}

export type ImageResolver = (imageId: string) => ImageFiles | Promise<ImageFiles>;

export type Accelerator = 'kvm' | 'tcg';

export interface QemuProviderOptions {
  name: string;
  hosts: QemuHostConfig[];
  images: ImageResolver;
  placement?: 'breadth' | 'depth';
  logger: Logger;
  /** auto: probe KVM at startup, fall back to TCG. */
  accel?: 'auto' | Accelerator;
  /** Grace for an ACPI power-off before the process is killed. */
  stopTimeoutMs?: number;
  /** How long start() waits for the VM to run and its console to answer. */
  startTimeoutMs?: number;
  /**
   * Host TCP services the guests may reach (e.g. the broker-run smbd): QEMU user networking
   * forwards guestAddress:guestPort to host:port, a new host connection per guest connection.
   * Guests reach nothing else on the host or beyond (restrict=on).
   */
  guestForwards?: Array<{ guestAddress: string; guestPort: number; host: string; port: number }>;
  /** QEMU binaries (defaults: from PATH). */
  qemuBinary?: string;
  qemuImgBinary?: string;
  /** Live-migration bandwidth cap in bytes per second (default: 1 GiB/s). */
  migrationMaxBandwidth?: number;
}

const DEFAULT_CMDLINE = 'console=tty0 console=ttyS0,115200 quiet';

/**
 * Images laid out as <root>/<name>/<version>/{vmlinuz,initrd.img,disk.qcow2,manifest.json}
 * (what scripts/image/build-demo-image.sh writes). Image ids: "name:version", "name/version",
 * or "name" for its highest numeric version.
 */
export function directoryImageResolver(root: string): ImageResolver {
  return (imageId: string): ImageFiles => {
    const m = /^([A-Za-z0-9][A-Za-z0-9_.-]*)(?:[:/]([A-Za-z0-9][A-Za-z0-9_.-]*))?$/.exec(imageId);
    if (!m || m[1] === undefined) throw new Error(`Image id "${imageId}" is not valid (expected name or name:version).`);
    const name = m[1];
    let version = m[2];
    if (!version) {
      let versions: string[] = [];
      try {
        versions = fs.readdirSync(path.join(root, name)).filter((v) => /^\d+$/.test(v));
      } catch {
        throw new Error(`Image ${imageId} not found: no directory ${path.join(root, name)}.`);
      }
      versions.sort((a, b) => Number(a) - Number(b));
      version = versions.at(-1);
      if (!version) throw new Error(`Image ${imageId} has no versions under ${path.join(root, name)}.`);
    }
    return imageFilesIn(path.resolve(root, name, version));
  };
}

/** The files of one image version laid out in a directory (vmlinuz, initrd.img, disk.qcow2, manifest.json). */
export function imageFilesIn(dir: string): ImageFiles {
  let cmdline = DEFAULT_CMDLINE;
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { cmdline?: unknown };
    if (typeof manifest.cmdline === 'string') cmdline = manifest.cmdline;
  } catch {
    // no manifest: defaults
  }
  const disk = path.join(dir, 'disk.qcow2');
  // A directory with only disk.qcow2 is a disk-booting golden image (Ubuntu, Windows...).
  if (!fs.existsSync(path.join(dir, 'vmlinuz'))) return { disk };
  return { kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd.img'), disk, cmdline };
}
