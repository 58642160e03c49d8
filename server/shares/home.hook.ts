// The user's folder around a desktop request: checked and created before assignment, and
// mounted inside the desktop by its guest agent at logon, without a restart. With a broker-run
// smbd (shares.list[].smb.managed) the broker rotates the user's SMB password, hands it only
// to that desktop's agent, and the agent mounts //<smbd>/<share> at /home/<user> and answers
// once it is usable. At logoff the agent unmounts (session logoff API, and a reconcile check
// for anything that slipped through). See docs/shares.md.
import type { Actor, Desktop, Pool, HomeHook } from '../broker/index.ts';
import { BrokerError } from '../errors.ts';
import type { DesktopSpec } from '../providers/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Config } from '../config/index.ts';
import type { ShareService, Share } from './share.service.ts';
import type { DriveRedirect } from '../tunnel/settings.ts';
import { folderName } from './names.ts';

type SharesConfig = Config['shares'];
export type AgentDesktop = Pick<Desktop, 'id' | 'provider' | 'image'>;

/** Where and how the guest mounts the user's folder. The password is a secret: never logged. */
export interface SmbHome {
  unc: string;
  host: string;
  port: number;
  share: string;
  username: string;
  password: string;
}

/** The part of the guest agents (server/agent) the user's folder needs. */
export interface HomeAgents {
  logon(d: AgentDesktop, req: { user: string; display: string; home?: SmbHome }, o: { timeoutMs: number }): Promise<{ home: string; mounted: boolean; ms: number }>;
  /** true when the guest's agent logged the user off (false or nothing: no agent of ours there). */
  logoff(d: AgentDesktop, user: string, o: { timeoutMs: number }): Promise<boolean | void>;
  status(desktopId: string, known?: AgentDesktop): Promise<{ connected: boolean; via: 'vdi' | 'qga' | 'none'; user?: string } | undefined>;
}

/** A logoff that does not answer within this is left to the reconcile check and the next logon. */
const LOGOFF_TIMEOUT_MS = 10_000;

export class HomeShares implements HomeHook {
  private agents: HomeAgents | undefined;
  private displayName: (user: string) => Promise<string> = async (u) => u;
  private desktopOf: (id: string) => Promise<Desktop | null> = async () => null;

  constructor(
    private readonly shares: ShareService,
    // Kept for callers of the former restart-to-remap hook; a logon needs no driver.
    _providers: unknown,
    private readonly logger: Logger,
    private readonly cfg?: SharesConfig,
  ) {}

  /** Wires in the guest agents (app.ts); without them the folder is reachable only as an RDP drive and its UNC path. */
  useAgents(agents: HomeAgents, o: { displayName?: (user: string) => Promise<string>; desktop?: (id: string) => Promise<Desktop | null> } = {}): void {
    this.agents = agents;
    if (o.displayName) this.displayName = o.displayName;
    if (o.desktop) this.desktopOf = o.desktop;
  }

  /** The user's login name inside guests: their folder's name (plain, or "~" + hex), never a raw id. */
  static guestUser(userId: string): string {
    return folderName(userId);
  }

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

  prepared(pool: Pool, user: string): boolean {
    let share;
    try {
      share = this.shares.forPool(pool);
    } catch {
      return false;
    }
    return !(share.smb && !share.smb.userName(user)) && this.shares.homeVerified(share, user);
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
    // A user whose name the share's smbd cannot take is refused before a desktop is taken.
    if (share.smb && !share.smb.userName(user)) {
      await this.shares.alert(actor, share.name, { user: user.slice(0, 80), pool: pool.name, error: 'user name not usable as an SMB user' });
      throw new BrokerError('share_unavailable', 'Your user name cannot be used on the file share; ask the helpdesk.');
    }
    await this.shares.ensureHome(actor, share, user, { pool: pool.name });
  }

  /** A ready desktop was handed over: its agent logs the user on with their folder mounted. */
  async attach(_actor: Actor, pool: Pool, desktop: Desktop, user: string): Promise<{ mounted: boolean; ms: number } | undefined> {
    // Still being built: logged on once ready (afterReady).
    if (desktop.state === 'provisioning' || desktop.state === 'refreshing') return undefined;
    return this.logon(desktop, pool, user);
  }

  /** A desktop built for a waiting user became ready (DesktopLifecycle.afterReady): log its holder on. */
  async afterReady(desktop: Desktop, pool: Pool): Promise<{ mounted: boolean; ms: number } | undefined> {
    if (!desktop.user || !desktop.session) return undefined;
    return this.logon(desktop, pool, desktop.user);
  }

  /**
   * Rotates the user's SMB credential and asks the desktop's agent to log them on with their
   * folder mounted; resolves once the agent says it is (share_unavailable otherwise). Guests
   * without our agent keep what they had: the UNC path (fw_cfg) and the RDP drive.
   */
  async logon(desktop: AgentDesktop, pool: Pick<Pool, 'name' | 'share'>, user: string): Promise<{ mounted: boolean; ms: number } | undefined> {
    if (!this.agents) return undefined;
    const st = await this.agents.status(desktop.id, desktop).catch(() => undefined);
    if (!st || st.via !== 'vdi') return undefined;
    const share = this.shares.forPool(pool);
    const t0 = Date.now();
    const log = this.logger.child({ desktop: desktop.id, user, share: share.name });
    let home: SmbHome | undefined;
    try {
      home = share.smb ? await this.smbHome(share, user) : undefined;
    } catch (e) {
      log.error({ err: (e as Error).message }, 'the user\'s share credential could not be set');
      throw e instanceof BrokerError ? e : new BrokerError('share_unavailable', undefined, { retryAfterSeconds: 30, cause: e });
    }
    const timeoutMs = this.smbOf(share)?.logonTimeoutMs ?? 20_000;
    let r;
    try {
      r = await this.agents.logon(desktop, { user: HomeShares.guestUser(user), display: await this.displayName(user).catch(() => user), ...(home ? { home } : {}) }, { timeoutMs });
    } catch (e) {
      log.error({ err: (e as Error).message, ms: Date.now() - t0 }, 'guest agent could not log the user on with their folder');
      throw new BrokerError('share_unavailable', 'Your desktop could not open your files; try again.', { retryAfterSeconds: 10, cause: e });
    }
    if (home && !r.mounted) {
      log.error({ ms: Date.now() - t0 }, 'guest agent logged the user on but did not mount their folder');
      throw new BrokerError('share_unavailable', 'Your desktop could not open your files; try again.', { retryAfterSeconds: 10 });
    }
    log.info({ ms: Date.now() - t0, guestMs: r.ms, mounted: r.mounted }, 'user logged on to the desktop with their folder');
    return { mounted: r.mounted, ms: Date.now() - t0 };
  }

  /**
   * The user left a desktop that stays running (persistent floating → ready, dedicated →
   * assigned): its agent logs them off and unmounts their folder. Best effort: the reconcile
   * check (home-logoff.ts) and the next logon (which unmounts first) catch what fails here.
   */
  async logoff(desktop: AgentDesktop, user: string): Promise<boolean> {
    if (!this.agents || !user) return false;
    try {
      // A desktop without our agent has nothing to log off (and no line to write, at every logoff).
      if ((await this.agents.logoff(desktop, user, { timeoutMs: LOGOFF_TIMEOUT_MS })) === false) return false;
      this.logger.info({ desktop: desktop.id, user }, 'user logged off the desktop, folder unmounted');
      return true;
    } catch (e) {
      this.logger.warn({ desktop: desktop.id, user, err: (e as Error).message }, 'guest agent did not log the user off; left to the reconcile check');
      return false;
    }
  }

  /**
   * A session ended (logoff API): when its desktop stays running for someone else or its owner
   * (ready, assigned), the agent logs the user off now rather than at the next reconcile pass.
   */
  afterSession(user: string, r: { desktopId: string; desktopState: string; desktop?: Desktop | null }): void {
    if (!this.agents || (r.desktopState !== 'ready' && r.desktopState !== 'assigned')) return;
    // The release hands back the desktop's record (session.service logoff): no second read.
    void (r.desktop ? Promise.resolve(r.desktop) : this.desktopOf(r.desktopId))
      .then((d) => (d ? this.logoff(d, HomeShares.guestUser(user)) : false))
      .catch((e: unknown) => this.logger.warn({ desktop: r.desktopId, err: (e as Error).message }, 'logoff after the session ended failed; left to the reconcile check'));
  }

  /** The agents (for the reconcile check). */
  get guestAgents(): HomeAgents | undefined {
    return this.agents;
  }

  private smbOf(share: Share): NonNullable<SharesConfig['list'][number]['smb']> | undefined {
    return this.cfg?.list.find((c) => c.name === share.name)?.smb;
  }

  private async smbHome(share: Share, user: string): Promise<SmbHome> {
    const smb = this.smbOf(share);
    const cred = await share.smb!.rotate(user);
    const host = smb?.guestHost ?? '10.0.2.100';
    const port = smb?.guestPort ?? 445;
    return { unc: `\\\\${host}\\${share.name}`, host, port, share: share.name, username: cred.username, password: cred.password };
  }
}
