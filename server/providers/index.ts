export type {
  Provider, ProviderCapabilities, DesktopSpec, DesktopResources, PowerState, ConsoleEndpoint,
  Snapshot, InventoryItem, MigrationResult, CreateResult, OperationOptions, HostInfo,
} from './provider.ts';
export { ProviderRegistry } from './registry.ts';
export { LibvirtProvider } from './libvirt/index.ts';
