import { BrokerError } from '../errors.ts';
import type { Store } from '../store/index.ts';
import type { ProviderRegistry, HostInfo } from '../providers/index.ts';
import type { Logger } from '../observability/index.ts';
import type { AuditService, Actor } from './audit.service.ts';
import type { DesktopService } from './desktop.service.ts';

export type HostView = HostInfo & { provider: string };

/** Hosts of all providers: capacity and load, maintenance, draining by live migration. */
export class HostService {
  constructor(
    private readonly store: Store,
    private readonly providers: ProviderRegistry,
    private readonly desktops: DesktopService,
    private readonly audit: AuditService,
    private readonly logger: Logger,
  ) {}

  async list(): Promise<HostView[]> {
    const out: HostView[] = [];
    for (const p of this.providers.list()) for (const h of await p.hosts()) out.push({ ...h, provider: p.name });
    return out;
  }

  private async find(provider: string, host: string): Promise<HostView> {
    if (!this.providers.has(provider)) throw new BrokerError('not_found', `No provider named "${provider}".`);
    const h = (await this.providers.get(provider).hosts()).find((x) => x.name === host);
    if (!h) throw new BrokerError('not_found', `Provider ${provider} has no host "${host}".`);
    return { ...h, provider };
  }

  async setMaintenance(actor: Actor, provider: string, host: string, on: boolean): Promise<HostView> {
    await this.find(provider, host);
    await this.store.images.setHostMaintenance(provider, host, on);
    await this.providers.get(provider).setHostMaintenance(host, on);
    await this.audit.record(actor, on ? 'host.maintenance.on' : 'host.maintenance.off', { type: 'host', id: `${provider}/${host}` });
    return this.find(provider, host);
  }

  /**
   * Maintenance on, then every desktop on the host moves to the least loaded other host, one
   * at a time, in the background. Returns the desktops that will move.
   */
  async drain(actor: Actor, provider: string, host: string): Promise<{ moving: string[] }> {
    await this.setMaintenance(actor, provider, host, true);
    const mine = (await this.desktops.list({ host })).filter((d) => d.provider === provider && !['deleting', 'deleted', 'provisioning'].includes(d.state));
    await this.audit.record(actor, 'host.drain', { type: 'host', id: `${provider}/${host}` }, { desktops: mine.length });
    void (async () => {
      for (const d of mine) {
        const targets = (await this.providers.get(provider).hosts()).filter((h) => h.name !== host && !h.maintenance);
        targets.sort((a, b) => a.used.memoryMiB / a.capacity.memoryMiB - b.used.memoryMiB / b.capacity.memoryMiB);
        if (!targets[0]) {
          this.logger.warn({ provider, host }, 'drain: no other host in service');
          return;
        }
        await this.desktops.migrate(actor, d.id, targets[0].name).catch((err: Error) => this.logger.warn({ desktop: d.id, err: err.message }, 'drain: migration failed'));
      }
    })();
    return { moving: mine.map((d) => d.id) };
  }
}
