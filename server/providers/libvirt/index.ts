export { LibvirtProvider } from './libvirt.provider.ts';
export type { LibvirtHostConfig, LibvirtProviderOptions } from './config.ts';
export { VDI_NS, metadataXml, domainXml } from './domain-xml.ts';
export { Virsh, LibvirtError } from './virsh.ts';
