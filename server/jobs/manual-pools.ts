import type { ProviderRegistry } from '../providers/index.ts';

/**
 * False for pools whose driver makes no desktops: a driver with neither linked nor full clones
 * (kind `manual`: existing machines). Their desktops are their machines, added and removed by
 * an admin; the reconcilers never create, rebuild or size them. Unknown drivers count as making
 * desktops (the lifecycle reports them as before).
 */
export function makesDesktops(providers: ProviderRegistry, providerName: string): boolean {
  if (!providers.has(providerName)) return true;
  const c = providers.get(providerName).capabilities;
  return c.linkedClones || c.fullClones;
}
