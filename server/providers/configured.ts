import { resolve } from 'node:path';
import type { Config } from '../config/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Provider } from './provider.ts';
import { QemuProvider, imageFilesIn } from './qemu/index.ts';
import { ManualProvider } from './manual/index.ts';
import { LibvirtProvider } from './libvirt/index.ts';
import type { Store } from '../store/index.ts';

/** How a driver finds the files of an image version ("name:version") in the broker's registry. */
export type ImagePathResolver = (ref: string) => Promise<string>;

/** guest smb.guestHost:guestPort → smb.address:port for every share with a broker-run smbd. */
export function smbForwards(config: Config): { guestAddress: string; guestPort: number; host: string; port: number }[] {
  return config.shares.list.flatMap((s) => (s.smb?.managed ? [{ guestAddress: s.smb.guestHost, guestPort: s.smb.guestPort, host: s.smb.address, port: s.smb.port }] : []));
}

/** The providers the configuration asks for. */
export function createProviders(config: Config, logger: Logger, imagePath: ImagePathResolver, store?: Store): Provider[] {
  return config.providers.map((p) => {
    if (p.kind === 'manual') {
      // Machines live in Redis; their credentials are sealed with a key derived from the tunnel secret.
      if (!store) throw new Error(`provider ${p.name}: a manual provider needs the store`);
      return new ManualProvider({
        name: p.name,
        machines: store.machines,
        secret: () => store.tickets.secret(config.tunnel.secret),
        guacd: config.guacd.host !== '',
        probeTimeoutMs: p.probeTimeoutMs,
        startTimeoutMs: p.startTimeoutMs,
        healthIntervalMs: p.healthIntervalMs,
        wakeAddress: p.wakeAddress,
        logger: logger.child({ provider: p.name, driver: 'manual' }),
      });
    }
    if (p.kind === 'libvirt') {
      return new LibvirtProvider({
        name: p.name,
        placement: p.placement,
        stopTimeoutMs: p.stopTimeoutMs,
        startTimeoutMs: p.startTimeoutMs,
        callTimeoutMs: p.callTimeoutMs,
        migrateTimeoutMs: p.migrateTimeoutMs,
        hosts: p.hosts,
        // Image versions are read on this machine and uploaded into each host's pool once.
        images: async (ref) => imageFilesIn(await imagePath(ref)),
        logger, // the driver binds provider and driver to its own child logger
      });
    }
    return new QemuProvider({
      name: p.name,
      accel: p.accel,
      placement: p.placement,
      stopTimeoutMs: p.stopTimeoutMs,
      startTimeoutMs: p.startTimeoutMs,
      hosts: p.hosts.map((h) => ({ ...h, dataDir: resolve(h.dataDir) })),
      images: async (ref) => imageFilesIn(await imagePath(ref)),
      // Guests reach the broker-run smbd of each share through a forward (their network is
      // restricted to these): users' folders are mounted over SMB at logon (docs/shares.md).
      guestForwards: smbForwards(config),
      logger,
    });
  });
}
