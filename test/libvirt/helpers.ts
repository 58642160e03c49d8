import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { LibvirtProvider } from '../../server/providers/libvirt/index.ts';
import type { LibvirtHostConfig, LibvirtProviderOptions } from '../../server/providers/libvirt/config.ts';
import { imageFilesIn } from '../../server/providers/qemu/config.ts';
import { IMAGE_ROOT, SerialShell } from '../qemu/helpers.ts';
import type { TestLibvirtd } from './daemon.ts';

// Shared by the libvirt driver tests: a provider over test daemons, every image ref resolved
// to the demo image the QEMU tests build, and the guest's serial shell.

export const DEMO_DIR = path.join(IMAGE_ROOT, 'demo', '1');

export function hostOf(d: TestLibvirtd, name: string, over: Partial<LibvirtHostConfig> = {}): LibvirtHostConfig {
  const serial = path.join(d.root, 'serial');
  fs.mkdirSync(serial, { recursive: true });
  // The agent sockets outside the daemon's private mounts, so this machine reaches them.
  const agent = path.join(d.root, 'agent');
  fs.mkdirSync(agent, { recursive: true, mode: 0o700 });
  return {
    name, uri: d.uri, consoleAddress: '127.0.0.1', storagePool: 'vdi', accel: 'tcg', network: 'user', serialSocketDir: serial, agentSocketDir: agent,
    overcommit: { cpu: 8, memory: 1 }, ...over,
  };
}

export function libvirtProvider(hosts: LibvirtHostConfig[], over: Partial<LibvirtProviderOptions> = {}): LibvirtProvider {
  return new LibvirtProvider({
    name: 'kvm',
    hosts,
    images: async () => imageFilesIn(DEMO_DIR),
    logger: pino({ level: process.env.VDI_TEST_LOG ?? 'silent' }),
    stopTimeoutMs: 20_000,
    startTimeoutMs: 90_000,
    callTimeoutMs: 20_000,
    ...over,
  });
}

/** The guest's shell on its serial console (a unix socket libvirt binds in the host's serial dir). */
export function serialShell(host: LibvirtHostConfig, id: string): Promise<SerialShell> {
  return SerialShell.open(path.join(host.serialSocketDir!, `${id}.serial`), 90_000);
}

export async function inGuest<T>(host: LibvirtHostConfig, id: string, fn: (sh: SerialShell) => Promise<T>): Promise<T> {
  const sh = await serialShell(host, id);
  try {
    return await fn(sh);
  } finally {
    sh.close();
  }
}
