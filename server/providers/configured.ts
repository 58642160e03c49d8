import { resolve } from 'node:path';
import type { Config } from '../config/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Provider } from './provider.ts';
import { QemuProvider, imageFilesIn } from './qemu/index.ts';

/** How a driver finds the files of an image version ("name:version") in the broker's registry. */
export type ImagePathResolver = (ref: string) => Promise<string>;

/** The providers the configuration asks for. */
export function createProviders(config: Config, logger: Logger, imagePath: ImagePathResolver): Provider[] {
  return config.providers.map(
    (p) =>
      new QemuProvider({
        name: p.name,
        accel: p.accel,
        placement: p.placement,
        stopTimeoutMs: p.stopTimeoutMs,
        startTimeoutMs: p.startTimeoutMs,
        hosts: p.hosts.map((h) => ({ ...h, dataDir: resolve(h.dataDir) })),
        images: async (ref) => imageFilesIn(await imagePath(ref)),
        // The holder's folder, resolved by the broker into the spec when the desktop is built
        // or refreshed for a user (server/shares); none for a desktop nobody holds.
        homeShare: (spec) => spec.home?.path,
        logger: logger.child({ provider: p.name }),
      }),
  );
}
