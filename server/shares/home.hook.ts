// The user's folder around a desktop request: checked and created before assignment, and
// mapped into the desktop handed out. The QEMU driver maps the folder (9p tag "home") when the
// VM starts, from DesktopSpec.home: a desktop built or refreshed for a user gets it at boot; a
// READY non-persistent desktop handed to a user is refreshed (it is a clean, unused clone
// anyway) with that user's folder, and a persistent one is restarted keeping its disk with the
// new holder's folder, before the request answers. See docs/shares.md.
import type { Actor, Desktop, Pool, HomeHook } from '../broker/index.ts';
import { BrokerError } from '../errors.ts';
import type { ProviderRegistry, DesktopSpec } from '../providers/index.ts';
import type { Logger } from '../observability/index.ts';
import { desktopSpec } from '../jobs/desktop-lifecycle.ts';
import type { ShareService } from './share.service.ts';
import type { DriveRedirect } from '../tunnel/settings.ts';

/** Driver kinds that map the home folder when the VM starts (so a ready desktop must restart). */
const MAPPED_AT_START = new Set(['qemu']);

export class HomeShares implements HomeHook {
  constructor(
    private readonly shares: ShareService,
    private readonly providers: ProviderRegistry,
    private readonly logger: Logger,
  ) {}

  /** The holder's folder for a desktop spec (undefined when the pool's share is not configured). */
  homeOf = (d: Pick<Desktop, 'user'>, pool: Pick<Pool, 'name' | 'share'>): DesktopSpec['home'] => {
    if (!d.user) return undefined;
    const share = this.shares.shares.find((s) => s.name === (pool.share ?? this.shares.shares[0]!.name));
    if (!share) return undefined;
    const unc = share.uncOf(d.user);
    return { path: share.homePath(d.user), ...(unc ? { unc } : {}) };
  };

  /** The user's folder as an RDP drive through guacd (tunnel/settings.ts consoleSettings). */
  drive(pool: Pick<Pool, 'name' | 'share' | 'fileTransfer'>, user: string): DriveRedirect {
    const share = this.shares.forPool(pool);
    return { path: share.guacdPathOf(user), name: this.shares.rdpDriveName, download: pool.fileTransfer?.download ?? true, upload: pool.fileTransfer?.upload ?? true };
  }

  async prepare(actor: Actor, pool: Pool, user: string): Promise<void> {
    let share;
    try {
      share = this.shares.forPool(pool);
    } catch (e) {
      this.logger.error({ pool: pool.name, share: pool.share }, 'pool names a share that is not configured');
      await this.shares.alert(actor, pool.share ?? '', { user, pool: pool.name, error: 'share not configured' });
      throw e;
    }
    await this.shares.ensureHome(actor, share, user, { pool: pool.name });
  }

  async attach(_actor: Actor, pool: Pool, desktop: Desktop, user: string): Promise<void> {
    if (!this.providers.has(desktop.provider)) return;
    const provider = this.providers.get(desktop.provider);
    if (!MAPPED_AT_START.has(provider.kind)) return;
    // Still being built: the lifecycle builds it from desktopSpec, with its holder's folder.
    if (desktop.state === 'provisioning' || desktop.state === 'refreshing') return;
    const spec = desktopSpec({ ...desktop, user }, pool, this.homeOf);
    const t0 = Date.now();
    if (pool.persistence !== 'persistent' && provider.capabilities.refresh) {
      await provider.refresh(spec);
      this.logger.info({ desktop: desktop.id, user, ms: Date.now() - t0 }, 'desktop restarted with the user\'s home folder');
      return;
    }
    // A persistent desktop keeps its disk, but never the previous holder's folder.
    if (!provider.remapHome) {
      this.logger.error({ desktop: desktop.id, pool: pool.name, provider: provider.name }, 'driver cannot change the home folder of a desktop: not handed out');
      throw new BrokerError('share_unavailable', `Provider ${provider.name} cannot map your folder into this desktop.`);
    }
    if (await provider.remapHome(spec)) {
      this.logger.info({ desktop: desktop.id, user, ms: Date.now() - t0 }, 'persistent desktop restarted with the holder\'s home folder');
    }
  }
}
