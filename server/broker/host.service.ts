import { BrokerError } from '../errors.ts';
import type { Store, Drain, DrainSummary } from '../store/index.ts';
import type { ProviderRegistry, HostInfo } from '../providers/index.ts';
import type { Logger } from '../observability/index.ts';
import { actorName, type AuditService, type Actor } from './audit.service.ts';
import type { DesktopService } from './desktop.service.ts';

export type HostView = HostInfo & { provider: string; drain: DrainSummary | null };

/** Hosts of all providers: capacity and load, maintenance, and draining (server/jobs/host-drain.ts moves the desktops). */
export class HostService {
  constructor(
    private readonly store: Store,
    private readonly providers: ProviderRegistry,
    private readonly desktops: DesktopService,
    private readonly audit: AuditService,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async list(): Promise<HostView[]> {
    const out: HostView[] = [];
    for (const p of this.providers.list()) {
      for (const h of await p.hosts()) out.push({ ...h, provider: p.name, drain: await this.store.drains.summary(p.name, h.name) });
    }
    return out;
  }

  private async find(provider: string, host: string): Promise<HostView> {
    if (!this.providers.has(provider)) throw new BrokerError('not_found', `No provider named "${provider}".`);
    const h = (await this.providers.get(provider).hosts()).find((x) => x.name === host);
    if (!h) throw new BrokerError('not_found', `Provider ${provider} has no host "${host}".`);
    return { ...h, provider, drain: await this.store.drains.summary(provider, host) };
  }

  /** Maintenance off also cancels the host's drain. */
  async setMaintenance(actor: Actor, provider: string, host: string, on: boolean): Promise<HostView> {
    await this.find(provider, host);
    await this.store.images.setHostMaintenance(provider, host, on);
    await this.providers.get(provider).setHostMaintenance(host, on);
    await this.audit.record(actor, on ? 'host.maintenance.on' : 'host.maintenance.off', { type: 'host', id: `${provider}/${host}` });
    if (!on) await this.endDrain(actor, provider, host, `maintenance turned off by ${actorName(actor)}`);
    return this.find(provider, host);
  }

  /**
   * Maintenance on, and a drain record that the host-drain reconciler carries out: every
   * desktop on the host moves to the least loaded host in service, one at a time, with
   * retries. A drain already running is returned as it is.
   */
  async drain(actor: Actor, provider: string, host: string): Promise<Drain> {
    await this.find(provider, host);
    if (!this.providers.get(provider).capabilities.liveMigration) {
      await this.audit.record(actor, 'host.drain', { type: 'host', id: `${provider}/${host}` }, { error: 'no live migration' }, 'failed');
      throw new BrokerError('not_supported', `Provider ${provider} cannot live-migrate desktops, so its hosts cannot be drained.`);
    }
    await this.setMaintenance(actor, provider, host, true);
    const mine = (await this.desktops.list({ host })).filter((d) => d.provider === provider && !['deleting', 'deleted'].includes(d.state));
    const { created, drain } = await this.store.drains.start(provider, host, actorName(actor), mine.map((d) => ({ id: d.id, name: d.name })), this.now());
    if (created) await this.audit.record(actor, 'host.drain', { type: 'host', id: `${provider}/${host}` }, { drain: drain.id, desktops: mine.length });
    this.logger.info({ provider, host, drain: drain.id, created, desktops: drain.progress.total }, 'host drain requested');
    return drain;
  }

  /** The host's latest drain. */
  async drainStatus(provider: string, host: string): Promise<Drain> {
    await this.find(provider, host);
    const d = await this.store.drains.get(provider, host);
    if (!d) throw new BrokerError('not_found', `Host ${provider}/${host} has never been drained.`);
    return d;
  }

  /** Stops the running drain (a migration in flight finishes); the host stays in maintenance. */
  async cancelDrain(actor: Actor, provider: string, host: string): Promise<Drain> {
    await this.drainStatus(provider, host);
    await this.endDrain(actor, provider, host, `cancelled by ${actorName(actor)}`);
    return this.drainStatus(provider, host);
  }

  private async endDrain(actor: Actor, provider: string, host: string, reason: string): Promise<void> {
    if (await this.store.drains.finish(provider, host, '', 'cancelled', reason, this.now())) {
      await this.audit.record(actor, 'host.drain.cancel', { type: 'host', id: `${provider}/${host}` }, { reason });
    }
  }
}
