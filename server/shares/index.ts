// User files on network shares: folders, quotas, health, the files API's operations, and the
// mapping of a user's folder into their desktop (docs/shares.md).
import type { Config } from '../config/index.ts';
import type { Logger, Metrics } from '../observability/index.ts';
import type { AuditService } from '../broker/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import type { QuotaRepository } from '../store/index.ts';
import { ShareService } from './share.service.ts';
import { FilesService } from './files.service.ts';
import { HomeShares } from './home.hook.ts';

export { ShareService, Share, type Usage, type ShareHealth, type Quota } from './share.service.ts';
export { FilesService, type FileEntry } from './files.service.ts';
export { HomeShares } from './home.hook.ts';
export { folderName, splitUserPath } from './names.ts';

export interface Shares {
  shares: ShareService;
  files: FilesService;
  home: HomeShares;
  /** Shutdown: aborts running uploads (temp files removed, reservations released) and stops the sweep. */
  close(): Promise<void>;
}

/**
 * Builds the share services from config.shares and starts the sweep of upload temp files left
 * by brokers that died mid-upload (in the background). `quota` keeps usage and reservations.
 */
export function createShares(config: Config, deps: { logger: Logger; metrics: Metrics; audit: AuditService; providers: ProviderRegistry; quota: QuotaRepository; now?: () => number }): Shares {
  const logger = deps.logger.child({ component: 'shares' });
  const shares = new ShareService(config.shares, { logger, metrics: deps.metrics, audit: deps.audit, quota: deps.quota, ...(deps.now ? { now: deps.now } : {}) });
  const files = new FilesService(shares, deps.quota, logger);
  void shares.startSweep();
  return {
    shares, files, home: new HomeShares(shares, deps.providers, logger),
    async close() {
      await files.close();
      await shares.close();
    },
  };
}
