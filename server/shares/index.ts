// User files on network shares: folders, quotas, health, the files API's operations, and the
// mapping of a user's folder into their desktop (docs/shares.md).
import type { Config } from '../config/index.ts';
import type { Logger, Metrics } from '../observability/index.ts';
import type { AuditService } from '../broker/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import type { QuotaRepository, Store } from '../store/index.ts';
import type { Desktop, Pool } from '../broker/index.ts';
import { ShareService } from './share.service.ts';
import { FilesService } from './files.service.ts';
import { HomeShares, type HomeAgents } from './home.hook.ts';
import { StaleHomeLogoffs, type LogoffCheckContext } from './home-logoff.ts';
import { ManagedSamba } from './samba/index.ts';
import path from 'node:path';

export { ShareService, Share, type Usage, type ShareHealth, type Quota } from './share.service.ts';
export { FilesService, type FileEntry } from './files.service.ts';
export { HomeShares, type HomeAgents, type SmbHome } from './home.hook.ts';
export { StaleHomeLogoffs } from './home-logoff.ts';
export { smbUserName } from './samba/index.ts';
export { folderName, splitUserPath } from './names.ts';
export { ManagedSamba, smbNegotiate, type SmbCredential } from './samba/index.ts';

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
  // Broker-run smbd per share that asks for one: started now in the background (a failure shows
  // in the share's health and is retried by the next check), stopped at shutdown.
  for (const c of config.shares.list) {
    const share = shares.get(c.name);
    if (!share || !c.smb?.managed) continue;
    share.smb = new ManagedSamba({
      share: share.name, root: share.root, dir: path.join(path.resolve(c.smb.dir), share.name), address: c.smb.address, port: c.smb.port,
      startTimeoutMs: c.smb.startTimeoutMs, logger: logger.child({ share: share.name, smbd: c.smb.port }),
    });
    share.smb.start().catch((e: unknown) => logger.error({ share: share.name, err: (e as Error).message }, 'smbd could not be started'));
  }
  return {
    shares, files, home: new HomeShares(shares, deps.providers, logger, config.shares),
    async close() {
      await files.close();
      await shares.close();
      for (const s of shares.shares) await s.smb?.stop();
    },
  };
}

/**
 * Wires the guest agents (server/agent) into the users' folders (app.ts): logon with the folder
 * mounted at hand-over and for desktops built for a waiting user (lifecycle afterReady), logoff
 * when a session ends by the logoff API, and the `home-logoff` reconcile check.
 */
export function useGuestAgents(s: Shares, agents: HomeAgents, deps: {
  store: Store;
  sessions: { onLogoff: ((user: string, r: { desktopId: string; desktopState: string }) => void) | undefined; recordHomeMapped?(sessionId: string, ms: number): Promise<void> };
  reconcilers: { lifecycle: { afterReady?: (d: Desktop, pool: Pool, signal: AbortSignal) => Promise<void> }; runner: { add(def: { name: string; intervalMs: number; run: (ctx: LogoffCheckContext) => Promise<void> }): void } } | null;
  intervalMs: number;
}): void {
  s.home.useAgents(agents, {
    displayName: async (u) => (await deps.store.users.get(u))?.displayName || u,
    desktop: (id) => deps.store.desktops.get(id),
  });
  deps.sessions.onLogoff = (user, r) => s.home.afterSession(user, r);
  if (!deps.reconcilers) return;
  deps.reconcilers.lifecycle.afterReady = async (d, pool) => {
    const r = await s.home.afterReady(d, pool);
    // The logon timeline's home_mapped phase, for a desktop built while its user waited.
    if (r && d.session) await deps.sessions.recordHomeMapped?.(d.session, r.ms).catch(() => undefined);
  };
  const check = new StaleHomeLogoffs(deps.store, s.home);
  deps.reconcilers.runner.add({ name: 'home-logoff', intervalMs: deps.intervalMs, run: (ctx) => check.run(ctx) });
}
