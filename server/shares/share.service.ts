// The configured file shares: where each user's folder is, its health, its quota and usage.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Counter, Gauge } from 'prom-client';
import type { Config } from '../config/index.ts';
import type { Logger, Metrics } from '../observability/index.ts';
import type { Actor, AuditService } from '../broker/index.ts';
import { BrokerError } from '../errors.ts';
import type { QuotaRepository, FolderCount } from '../store/index.ts';
import { folderName, INTERNAL_PREFIX } from './names.ts';
import { countFolder, removeStaleUploads, type FolderTotals } from './folder-walk.ts';
import type { ManagedSamba } from './samba/index.ts';

type SharesConfig = Config['shares'];
type ShareConfig = SharesConfig['list'][number];

export interface Quota {
  softBytes: number;
  hardBytes: number;
}

export interface ShareHealth {
  ok: boolean;
  checkedAt: number;
  error: string;
  lastFailureAt: number;
  lastError: string;
}

export interface Usage {
  share: string;
  usedBytes: number;
  files: number;
  softBytes: number;
  hardBytes: number;
  overSoft: boolean;
  overHard: boolean;
}

/** One configured share, with absolute paths. */
export class Share {
  readonly name: string;
  readonly root: string;
  readonly unc: string;
  readonly guacdRoot: string;
  readonly createRoot: boolean;
  readonly quota: Quota;
  health: ShareHealth = { ok: false, checkedAt: 0, error: 'not checked yet', lastFailureAt: 0, lastError: '' };
  /** The broker-run smbd over this share (shares.list[].smb.managed); its answering is part of health. */
  smb: ManagedSamba | undefined;
  probing: Promise<ShareHealth> | undefined;

  constructor(c: ShareConfig, defaults: Quota) {
    this.name = c.name;
    this.root = path.resolve(c.root);
    this.unc = c.unc;
    this.guacdRoot = c.guacdPath || this.root;
    this.createRoot = c.createRoot;
    this.quota = c.quota ?? defaults;
  }

  /** The user's folder on the broker host. */
  homePath(userId: string): string {
    return path.join(this.root, folderName(userId));
  }

  /** The user's folder as guests and users know it ({username} replaced), or '' when not configured. */
  uncOf(userId: string): string {
    return this.unc ? this.unc.replaceAll('{username}', folderName(userId)) : '';
  }

  /** The user's folder as mounted on the guacd host (RDP drive-path). */
  guacdPathOf(userId: string): string {
    return path.posix.join(this.guacdRoot, folderName(userId));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what} did not answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

/**
 * The shares of config `shares.list`. Folders are created on demand (mode 0700, owned by the
 * broker's user); health is a write probe in the share root, trusted for healthCacheMs.
 */
export class ShareService {
  readonly shares: Share[];
  private readonly up: Gauge<'share'>;
  private readonly failures: Counter<'share'>;

  constructor(
    private readonly cfg: SharesConfig,
    private readonly deps: { logger: Logger; metrics: Metrics; audit: AuditService; quota: QuotaRepository; now?: () => number },
  ) {
    this.shares = cfg.list.map((c) => new Share(c, cfg.quota));
    // One registry may serve several brokers (tests): reuse the metrics when they exist.
    const reg = deps.metrics.registry;
    this.up = (reg.getSingleMetric('vdi_share_up') as Gauge<'share'> | undefined)
      ?? new Gauge({ name: 'vdi_share_up', help: 'File share health (1 reachable and writable, 0 not), by share', labelNames: ['share'] as const, registers: [reg] });
    this.failures = (reg.getSingleMetric('vdi_share_failures_total') as Counter<'share'> | undefined)
      ?? new Counter({ name: 'vdi_share_failures_total', help: 'Failed file share health probes, by share', labelNames: ['share'] as const, registers: [reg] });
  }

  get maxUploadBytes(): number {
    return this.cfg.maxUploadBytes;
  }

  get rdpDriveName(): string {
    return this.cfg.rdpDriveName;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  get(name: string): Share | undefined {
    return this.shares.find((s) => s.name === name);
  }

  /** The share a pool's users keep their files on (pool.share, else the first). */
  forPool(pool: { name: string; share?: string | undefined } | undefined): Share {
    if (!pool?.share) return this.shares[0]!;
    const s = this.get(pool.share);
    if (!s) throw new BrokerError('share_unavailable', `Pool ${pool.name} names share "${pool.share}", which is not configured.`);
    return s;
  }

  /** Checks the share is there, a folder, and writable (a probe file is written and removed). */
  async health(share: Share, opts: { force?: boolean } = {}): Promise<ShareHealth> {
    if (!opts.force && share.health.ok && this.now() - share.health.checkedAt < this.cfg.healthCacheMs) return share.health;
    share.probing ??= this.probe(share).finally(() => (share.probing = undefined));
    return share.probing;
  }

  private async probe(share: Share): Promise<ShareHealth> {
    const checkedAt = this.now();
    let error = '';
    try {
      await withTimeout((async () => {
        if (share.createRoot) await fsp.mkdir(share.root, { recursive: true, mode: 0o755 }).catch(() => undefined);
        const st = await fsp.lstat(share.root);
        if (!st.isDirectory()) throw new Error(`${share.root} is not a directory`);
        const probe = path.join(share.root, `${INTERNAL_PREFIX}probe-${process.pid}-${randomBytes(4).toString('hex')}`);
        const fh = await fsp.open(probe, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW, 0o600);
        try {
          await fh.writeFile('ok');
          await fh.sync();
        } finally {
          await fh.close();
          await fsp.rm(probe, { force: true });
        }
        // Half the budget: a stuck smbd is named as such, not as a slow share.
        await share.smb?.check(Math.max(500, Math.floor(this.cfg.healthTimeoutMs / 2)));
      })(), this.cfg.healthTimeoutMs, `share ${share.name}`);
    } catch (e) {
      error = (e as NodeJS.ErrnoException).code ? `${(e as NodeJS.ErrnoException).code}: ${(e as Error).message}` : (e as Error).message;
    }
    const ok = !error;
    const was = share.health;
    share.health = { ok, checkedAt, error, lastFailureAt: ok ? was.lastFailureAt : checkedAt, lastError: ok ? was.lastError : error };
    this.up.set({ share: share.name }, ok ? 1 : 0);
    if (!ok) {
      this.failures.inc({ share: share.name });
      this.deps.logger.error({ share: share.name, root: share.root, err: error }, 'file share unavailable');
    } else if (!was.ok && was.checkedAt) {
      this.deps.logger.info({ share: share.name }, 'file share available again');
    }
    return share.health;
  }

  /**
   * The user's folder, created if missing (0700, the broker's user), after a health check.
   * Unavailable: share_unavailable, an audit entry (outcome failed) for the helpdesk and a log line.
   */
  private readonly verifiedHomes = new Map<string, number>();

  /** ensureHome() would answer at once without touching anything: the folder was verified a moment ago on a share that is healthy. */
  homeVerified(share: Share, userId: string): boolean {
    return share.health.ok && this.now() - share.health.checkedAt < this.cfg.healthCacheMs && (this.verifiedHomes.get(`${share.name}/${userId}`) ?? 0) > this.now();
  }

  async ensureHome(actor: Actor, share: Share, userId: string, context: Record<string, unknown> = {}): Promise<string> {
    const h = await this.health(share);
    const home = share.homePath(userId);
    // A folder verified a moment ago on a healthy share is not re-checked on every request
    // (at 08:00 this path runs thousands of times a second).
    const key = `${share.name}/${userId}`;
    if (h.ok && (this.verifiedHomes.get(key) ?? 0) > this.now()) return home;
    try {
      if (!h.ok) throw new Error(h.error);
      await withTimeout((async () => {
        try {
          await fsp.mkdir(home, { mode: 0o700 });
          await fsp.chmod(home, 0o700); // umask-proof
          this.deps.logger.info({ share: share.name, user: userId }, 'user folder created');
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        const st = await fsp.lstat(home);
        if (!st.isDirectory()) throw new Error(`${home} exists and is not a directory`);
      })(), this.cfg.healthTimeoutMs, `share ${share.name}`);
      if (this.verifiedHomes.size > 100_000) this.verifiedHomes.clear();
      this.verifiedHomes.set(key, this.now() + 30_000);
      return home;
    } catch (e) {
      const message = (e as Error).message;
      if (h.ok) {
        // The probe passed a moment ago but the folder failed: the share is not healthy after all.
        share.health = { ...share.health, ok: false, error: message, lastFailureAt: this.now(), lastError: message };
        this.up.set({ share: share.name }, 0);
        this.failures.inc({ share: share.name });
        this.deps.logger.error({ share: share.name, user: userId, err: message }, 'user folder cannot be prepared');
      }
      await this.deps.audit.record(actor, 'share.unavailable', { type: 'share', id: share.name }, { user: userId, error: message.slice(0, 300), ...context }, 'failed').catch(() => undefined);
      throw new BrokerError('share_unavailable', undefined, { retryAfterSeconds: 30, cause: e });
    }
  }

  /** An alert for the helpdesk about a share a request could not use (audit, outcome failed). */
  async alert(actor: Actor, share: string, details: Record<string, unknown>): Promise<void> {
    await this.deps.audit.record(actor, 'share.unavailable', { type: 'share', id: share }, details, 'failed').catch(() => undefined);
  }

  /**
   * Bytes and files in the user's folder: the count kept in Redis (every write, delete and
   * upload through the files API updates it), checked against a real walk of the folder at most
   * every usageRecountMs, because the guest writes to it over SMB behind the broker's back.
   */
  async usage(share: Share, userId: string): Promise<Usage> {
    const folder = folderName(userId);
    const kept = await this.deps.quota.count(share.name, folder);
    const c = kept && this.now() - kept.countedAt < this.cfg.usageRecountMs ? kept : await this.recount(share, folder, kept);
    const q = share.quota;
    return { share: share.name, usedBytes: c.usedBytes, files: c.files, ...q, overSoft: c.usedBytes > q.softBytes, overHard: c.usedBytes >= q.hardBytes };
  }

  /** Walks a folder (links counted, never followed) and keeps the result, unless the API changed the count meanwhile. */
  async recount(share: Share, folder: string, kept?: FolderCount | null): Promise<FolderTotals> {
    const genSeen = (kept === undefined ? await this.deps.quota.count(share.name, folder) : kept)?.gen ?? 0;
    const walked = await countFolder(path.join(share.root, folder), this.staleBefore());
    return this.deps.quota.recount(share.name, folder, { ...walked, countedAt: this.now(), genSeen });
  }

  /** Upload temp files last written before this are a dead broker's (file times are wall-clock). */
  private staleBefore(): number {
    return Date.now() - this.cfg.staleUploadMs;
  }

  /** Bytes and files under a folder inside a user's folder (what deleting it frees). */
  countUnder(dir: string): Promise<FolderTotals> {
    return countFolder(dir, this.staleBefore());
  }

  private sweeping: Promise<void> | undefined;
  private closed = false;

  /**
   * Starts the start-up sweep in the background: upload temp files a broker left behind (it died
   * or was killed mid-upload; untouched for staleUploadMs, so another replica's live upload is
   * kept) are removed from every user folder of every share, and those folders are recounted.
   */
  startSweep(): Promise<void> {
    this.sweeping ??= this.sweep().catch((e: unknown) => this.deps.logger.warn({ err: (e as Error).message }, 'upload sweep failed'));
    return this.sweeping;
  }

  private async sweep(): Promise<void> {
    for (const share of this.shares) {
      let folders: fs.Dirent[];
      try {
        folders = await fsp.readdir(share.root, { withFileTypes: true });
      } catch (e) {
        this.deps.logger.warn({ share: share.name, err: (e as Error).message }, 'upload sweep: share root not readable');
        continue;
      }
      let removed = 0;
      for (const f of folders) {
        if (this.closed) return;
        if (!f.isDirectory() || f.name.startsWith(INTERNAL_PREFIX)) continue;
        try {
          const n = await removeStaleUploads(path.join(share.root, f.name), this.staleBefore());
          if (n === 0) continue;
          removed += n;
          await this.recount(share, f.name);
        } catch (e) {
          this.deps.logger.warn({ share: share.name, folder: f.name, err: (e as Error).message }, 'upload sweep: folder skipped');
        }
      }
      if (removed) this.deps.logger.info({ share: share.name, removed }, 'upload sweep removed temp files left by interrupted uploads');
    }
  }

  /** Stops the sweep (between folders) and waits for it. */
  async close(): Promise<void> {
    this.closed = true;
    await this.sweeping;
  }

  /** What the helpdesk sees of the shares: configuration and a fresh health probe. */
  async describe(): Promise<{ name: string; root: string; unc: string; guacdPath: string; quota: Quota; health: ShareHealth }[]> {
    const out = [];
    for (const s of this.shares) {
      const health = await this.health(s, { force: true });
      out.push({ name: s.name, root: s.root, unc: s.unc, guacdPath: s.guacdRoot, quota: s.quota, health: { ...health } });
    }
    return out;
  }
}
