import type { Store } from '../store/index.ts';
import type { ImageService } from '../broker/index.ts';
import type { JobContext } from './runner.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import { makesDesktops } from './manual-pools.ts';

/** At most this many desktops per pool start their rebuild in one pass. */
const MAX_PER_PASS = 20;

/**
 * Rolls a newly published image version out: desktops nobody is using (ready, or assigned
 * without a session) are rebuilt at once; busy ones when their user logs off (non-persistent
 * pools refresh at logoff anyway; persistent ones come back ready/assigned and are rebuilt then).
 */
export class ImageRollout {
  constructor(private readonly store: Store, private readonly images: Pick<ImageService, 'currentRef'>, private readonly providers?: ProviderRegistry) {}

  async run(ctx: JobContext): Promise<void> {
    for (const pool of await this.store.pools.list()) {
      if (!ctx.holdsLease()) return;
      // Manual pools' machines are not built from the image: nothing to roll out.
      if (pool.deleting || (this.providers && !makesDesktops(this.providers, pool.provider))) continue;
      const target = await this.images.currentRef(pool.image).catch(() => null);
      if (!target) continue;
      const idle = [...(await this.store.desktops.idsInState(pool.name, 'ready')), ...(await this.store.desktops.idsInState(pool.name, 'assigned'))];
      let started = 0;
      for (const d of await this.store.desktops.getMany(idle)) {
        if (started >= MAX_PER_PASS) break;
        if (d.image === target || d.session) continue;
        const r = await this.store.desktops.transition(d.id, 'refreshing', { expect: [d.state], reason: `image rollout to ${target}`, now: ctx.now });
        if (r.ok) {
          started++;
          ctx.logger.info({ pool: pool.name, desktop: d.id, from: d.image, to: target }, 'rebuilding desktop for image rollout');
        }
      }
    }
  }
}
