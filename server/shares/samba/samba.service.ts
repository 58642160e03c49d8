// The broker-run smbd of a share (the embedded default): Debian's smbd with a private config on
// a loopback port, one folder per user, users in a private passwd file shown to smbd through
// libnss_wrapper (no system accounts), and a password the broker rotates at every logon.
// Started with the broker, stopped at shutdown, by the pid in its private pid directory; one
// left by a broker that crashed is adopted when it is ours and answers, else replaced.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../observability/index.ts';
import { BrokerError } from '../../errors.ts';
import { smbNegotiate } from './negotiate.ts';
import {
  FIRST_SHARE_UID, SAMBA_SUBDIRS, linkName, parsePasswd, renderGroup, renderPasswd, renderSmbConf, sambaPaths, smbUserName,
  type NssUser, type SambaPaths,
} from './smb-conf.ts';

export interface ManagedSambaOptions {
  /** SMB share name. */
  share: string;
  /** The share root (absolute). */
  root: string;
  /** Private directory (config, passdb, pid, logs), created 0700. */
  dir: string;
  address: string;
  port: number;
  startTimeoutMs: number;
  logger: Logger;
  /** Binaries (tests may point elsewhere). */
  smbd?: string;
  smbpasswd?: string;
  nssWrapper?: string;
}

/** What the guest mounts the user's folder with. The password is a secret: never logged. */
export interface SmbCredential {
  username: string;
  password: string;
}

const NSS_WRAPPER_CANDIDATES = ['/usr/lib/x86_64-linux-gnu/libnss_wrapper.so', '/usr/lib/aarch64-linux-gnu/libnss_wrapper.so', '/usr/lib/libnss_wrapper.so'];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readPid(file: string): Promise<number> {
  try {
    const n = Number((await fsp.readFile(file, 'utf8')).trim());
    return Number.isInteger(n) && n > 1 ? n : 0;
  } catch {
    return 0;
  }
}

/** True when pid is an smbd running on this config file (not a recycled pid). */
async function isOurSmbd(pid: number, conf: string): Promise<boolean> {
  try {
    const argv = (await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return path.basename(argv[0] ?? '').startsWith('smbd') && argv.includes(conf);
  } catch {
    return false;
  }
}

/** Last mtime (s) given to a file libnss_wrapper reads. */
let lastNssMtime = 0;

/**
 * Replaces a file atomically. libnss_wrapper re-reads its files only when their inode or mtime
 * (whole seconds) changes, and a rename often reuses the inode just freed: every version gets a
 * later mtime than the one before, or a user added within the same second stays unknown.
 */
async function writeAtomic(file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await fsp.writeFile(tmp, text, { mode });
  lastNssMtime = Math.max(Math.floor(Date.now() / 1000), lastNssMtime + 1);
  await fsp.utimes(tmp, lastNssMtime, lastNssMtime);
  await fsp.rename(tmp, file);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ManagedSamba {
  readonly paths: SambaPaths;
  private pid = 0;
  private starting: Promise<void> | undefined;
  private stopped = false;
  /** Passwd changes and smbpasswd runs one at a time (one file, one passdb). */
  private queue: Promise<unknown> = Promise.resolve();
  private users = new Map<string, NssUser>();
  private readonly service: NssUser;
  private readonly reserved: Set<string>;
  private readonly nssWrapper: string;

  constructor(private readonly o: ManagedSambaOptions) {
    this.paths = sambaPaths(path.resolve(o.dir));
    const me = os.userInfo();
    this.service = { name: me.username, uid: me.uid, gid: me.gid };
    // Names of the private passwd file's own accounts are never SMB users (a user called "root").
    this.reserved = new Set([me.username, 'root', 'nobody', 'nogroup', 'guest', 'administrator', 'vdi']);
    this.nssWrapper = o.nssWrapper ?? NSS_WRAPPER_CANDIDATES.find((f) => fs.existsSync(f)) ?? NSS_WRAPPER_CANDIDATES[0]!;
  }

  get port(): number {
    return this.o.port;
  }

  get address(): string {
    return this.o.address;
  }

  get share(): string {
    return this.o.share;
  }

  /** The running smbd's pid (0 when not running). */
  get smbdPid(): number {
    return this.pid;
  }

  /** The SMB user name of a broker user, or undefined when Samba cannot take it. */
  userName(userId: string): string | undefined {
    return smbUserName(userId, this.reserved);
  }

  private env(): NodeJS.ProcessEnv {
    return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LD_PRELOAD: this.nssWrapper, NSS_WRAPPER_PASSWD: this.paths.passwd, NSS_WRAPPER_GROUP: this.paths.group, LANG: 'C' };
  }

  /** Starts (or adopts) smbd; resolves once it answers a negotiate. Repeated calls share one start. */
  start(): Promise<void> {
    this.stopped = false;
    this.starting ??= this.doStart().catch((e: unknown) => {
      this.starting = undefined;
      throw e;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const log = this.o.logger;
    if (!fs.existsSync(this.nssWrapper)) throw new Error(`libnss_wrapper not found at ${this.nssWrapper} (apt-get install libnss-wrapper)`);
    await fsp.mkdir(this.paths.dir, { recursive: true, mode: 0o700 });
    await fsp.chmod(this.paths.dir, 0o700);
    for (const d of SAMBA_SUBDIRS) await fsp.mkdir(path.join(this.paths.dir, d), { recursive: true, mode: 0o700 });
    // Users handed out before (a restart keeps their uids and passdb entries).
    const kept = fs.existsSync(this.paths.passwd) ? parsePasswd(await fsp.readFile(this.paths.passwd, 'utf8')) : [];
    this.users = new Map(kept.filter((u) => u.uid >= FIRST_SHARE_UID && !this.reserved.has(u.name)).map((u) => [u.name, u]));
    await this.writeNss();
    await writeAtomic(this.paths.conf, renderSmbConf({ paths: this.paths, share: this.o.share, address: this.o.address, port: this.o.port, serviceUser: this.service.name }), 0o600);

    const old = await readPid(this.paths.pidFile);
    if (old && alive(old) && (await isOurSmbd(old, this.paths.conf))) {
      // A broker that crashed left its smbd running: keep it if it answers (config re-read), else replace it.
      try {
        process.kill(old, 'SIGHUP');
        await smbNegotiate(this.o.address, this.o.port, 3000);
        this.pid = old;
        log.info({ pid: old, port: this.o.port }, 'adopted the running smbd of this share');
        return;
      } catch (e) {
        log.warn({ pid: old, err: (e as Error).message }, 'smbd left running does not answer: replacing it');
        await this.kill(old);
      }
    }
    await fsp.rm(this.paths.pidFile, { force: true });
    // smbd binds with SO_REUSEPORT-like semantics: a second one on a taken port would start and
    // share the connections with whatever listens there. Refuse instead.
    const taken = await smbNegotiate(this.o.address, this.o.port, 1000).then(() => true, () => false);
    if (taken) throw new Error(`${this.o.address}:${this.o.port} already answers SMB (another smbd?): not starting a second one there`);
    const t0 = Date.now();
    const r = await this.exec(this.o.smbd ?? 'smbd', ['-s', this.paths.conf, '-D'], '', 15_000);
    if (r.code !== 0) throw new Error(`smbd did not start (exit ${r.code}): ${r.out.slice(-500)}`);
    const deadline = Date.now() + this.o.startTimeoutMs;
    let lastErr = '';
    for (;;) {
      const pid = await readPid(this.paths.pidFile);
      if (pid && alive(pid)) {
        try {
          await smbNegotiate(this.o.address, this.o.port, 2000);
          this.pid = pid;
          log.info({ pid, port: this.o.port, ms: Date.now() - t0 }, 'smbd started');
          return;
        } catch (e) {
          lastErr = (e as Error).message;
        }
      }
      if (Date.now() > deadline) {
        if (pid) await this.kill(pid);
        throw new Error(`smbd did not answer on ${this.o.address}:${this.o.port} within ${this.o.startTimeoutMs} ms: ${lastErr || 'no pid file'}; ${await this.logTail()}`);
      }
      await sleep(100);
    }
  }

  private async logTail(): Promise<string> {
    try {
      const text = await fsp.readFile(path.join(this.paths.logDir, 'log.smbd'), 'utf8');
      return text.slice(-400).replace(/\s+/g, ' ');
    } catch {
      return '(no smbd log)';
    }
  }

  private async kill(pid: number): Promise<void> {
    try {
      process.kill(pid, 'SIGTERM');
      process.kill(pid, 'SIGCONT'); // a stopped smbd acts on SIGTERM only once it runs again
    } catch {
      return;
    }
    for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
    if (alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }

  /** Stops the smbd this broker started or adopted (by its pid). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.starting?.catch(() => undefined);
    this.starting = undefined;
    const pid = this.pid || (await readPid(this.paths.pidFile));
    this.pid = 0;
    if (pid && alive(pid) && (await isOurSmbd(pid, this.paths.conf))) {
      await this.kill(pid);
      this.o.logger.info({ pid }, 'smbd stopped');
    }
  }

  /** Health: smbd was started and answers an SMB2 negotiate. */
  async check(timeoutMs: number): Promise<void> {
    if (this.stopped) throw new Error('smbd is stopped');
    if (this.pid && !alive(this.pid)) {
      // It died under us (killed, crashed): start a new one rather than stay down.
      this.o.logger.warn({ pid: this.pid }, 'smbd is gone: starting it again');
      this.pid = 0;
      this.starting = undefined;
    }
    await this.start();
    await smbNegotiate(this.o.address, this.o.port, timeoutMs).catch((e: unknown) => {
      throw new Error(`smbd of share ${this.o.share}: ${(e as Error).message}`);
    });
  }

  private async writeNss(): Promise<void> {
    const users = [this.service, { name: 'nobody', uid: 65534, gid: 65534 }, ...[...this.users.values()].sort((a, b) => a.uid - b.uid)];
    const groups = [{ name: this.service.uid === 0 ? 'root' : 'vdi', gid: this.service.gid }, { name: 'nogroup', gid: 65534 }];
    await writeAtomic(this.paths.passwd, renderPasswd(users.filter((u, i) => users.findIndex((x) => x.name === u.name) === i)), 0o644);
    await writeAtomic(this.paths.group, renderGroup(groups.filter((g, i) => groups.findIndex((x) => x.gid === g.gid) === i)), 0o644);
  }

  /**
   * A fresh random password for the user's SMB account (created on first use), set through
   * smbpasswd's stdin: the previous one is refused from now on. share_unavailable when the
   * user's name cannot be an SMB user or smbd's passdb cannot be written.
   */
  rotate(userId: string): Promise<SmbCredential> {
    const run = this.queue.then(() => this.doRotate(userId));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async doRotate(userId: string): Promise<SmbCredential> {
    const username = this.userName(userId);
    if (!username) throw new BrokerError('share_unavailable', 'Your user name cannot be used on the file share; ask the helpdesk.');
    await this.start();
    if (!this.users.has(username)) {
      const uid = Math.max(FIRST_SHARE_UID - 1, ...[...this.users.values()].map((u) => u.uid)) + 1;
      this.users.set(username, { name: username, uid, gid: 65534 });
      await this.writeNss();
    }
    await this.link(username);
    // base64url: no character a credentials file or mount option would have to quote.
    const password = randomBytes(24).toString('base64url');
    const r = await this.exec(this.o.smbpasswd ?? 'smbpasswd', ['-c', this.paths.conf, '-s', '-a', username], `${password}\n${password}\n`, 15_000);
    if (r.code !== 0) {
      this.o.logger.error({ user: userId, code: r.code, out: r.out.slice(-300) }, 'smbpasswd could not set the user\'s share credential');
      throw new BrokerError('share_unavailable', undefined, { retryAfterSeconds: 30 });
    }
    return { username, password };
  }

  /** links/<name as Samba spells %U> → <root>/<folder>: the user's share path. */
  private async link(username: string): Promise<void> {
    const link = path.join(this.paths.dir, 'links', linkName(username));
    const target = path.join(path.resolve(this.o.root), username);
    const cur = await fsp.readlink(link).catch(() => '');
    if (cur === target) return;
    const tmp = `${link}.${randomBytes(4).toString('hex')}`;
    await fsp.symlink(target, tmp);
    await fsp.rename(tmp, link);
  }

  /** Runs a Samba tool with libnss_wrapper; stdin carries secrets (never the command line). */
  private exec(cmd: string, args: string[], input: string, timeoutMs: number): Promise<{ code: number | null; out: string }> {
    return new Promise((resolve) => {
      const child = spawn(cmd, args, { env: this.env(), stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
      child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
      child.once('error', (e) => {
        clearTimeout(t);
        resolve({ code: -1, out: e.message });
      });
      child.once('close', (code) => {
        clearTimeout(t);
        resolve({ code, out });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    });
  }
}
