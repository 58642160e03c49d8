export { QemuProvider } from './qemu.provider.ts';
export type { QemuInventoryItem } from './desktop-dirs.ts';
export { directoryImageResolver, imageFilesIn, type ImageFiles, type ImageResolver, type QemuHostConfig, type QemuProviderOptions } from './config.ts';
export type { HostStatus } from './hosts.ts';
