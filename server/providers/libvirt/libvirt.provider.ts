import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { BrokerError } from '../../errors.ts';
import type {
  AgentChannels, ConsoleEndpoint, CreateResult, DesktopSpec, HostInfo, InventoryItem, MigrateOptions, MigrationResult, OperationOptions, PowerState, Provider,
  ProviderCapabilities, Snapshot,
} from '../provider.ts';
import { desktopUuid, newVncPassword } from '../qemu/machine.ts';
import { ID_RE, NAME_RE, checkSnapshotName, validateSpec } from '../qemu/validate.ts';
import { QgaOverVirsh, agentSecretVolume, channelTransport, connectOverSsh, connectUnix, qemuOwner, readAgentSecret, removeAgentSecret, writeAgentSecret } from './agent.ts';
import type { LibvirtHostConfig, LibvirtProviderOptions } from './config.ts';
import { AGENT_PORT, type AgentDevices, channelSocket, domainXml, graphicsPassword, parseDisplay } from './domain-xml.ts';
import { hostInfo, probeVirtType } from './hosts.ts';
import { type OwnedDomain, domainInfo, metadataOf, ownedDomains, refuseForeignName } from './inventory.ts';
import { liveMigrate } from './migrate.ts';
import { placeOn } from './placement.ts';
import { type Located, powerOff, powerOn } from './power.ts';
import { createSnapshot, deleteSnapshot, listSnapshots, revertSnapshot } from './snapshots.ts';
import { LibvirtError, Virsh, isFailure } from './virsh.ts';
import { type ImageOnHost, Volumes, desktopVolume } from './volumes.ts';

// Desktops on KVM hosts managed by libvirt. The domains themselves are the state: each carries
// the broker's metadata (id, pool, image, clone), its UUID is derived from the desktop id, and
// its disk volume is named after the id, so a restarted broker finds everything again.

export class LibvirtProvider implements Provider {
  readonly kind = 'libvirt';
  readonly name: string;
  readonly capabilities: ProviderCapabilities = {
    linkedClones: true, fullClones: true, refresh: true, snapshots: true, liveMigration: true, consoleProtocols: ['vnc'],
  };

  readonly virsh: Virsh;
  private readonly hostList: LibvirtHostConfig[];
  private readonly log: Logger;
  private readonly volumes: Volumes;
  private readonly stopTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly passwords = new Map<string, string>();
  private readonly locks = new Map<string, Promise<void>>();
  private readonly images = new Map<string, Promise<ImageOnHost>>();
  private readonly virtTypes = new Map<string, Promise<'kvm' | 'qemu'>>();
  private readonly qemuOwners = new Map<string, Promise<{ uid: number; gid: number } | undefined>>();
  private readonly reserved = new Map<string, { host: string; vcpu: number; memoryMiB: number }>();
  /** Last inventory seen per host: what is reported (as unreachable) while a host does not answer. */
  private readonly lastSeen = new Map<string, OwnedDomain[]>();

  constructor(private readonly opts: LibvirtProviderOptions) {
    this.name = opts.name;
    this.log = opts.logger.child({ provider: opts.name, driver: 'libvirt' });
    this.virsh = new Virsh(opts.virsh ?? 'virsh', opts.callTimeoutMs ?? 30_000);
    this.virsh.onReachability = (host, r) => {
      if (r.reachable) this.log.info({ host }, 'libvirt host reachable again');
      else this.log.warn({ host, err: r.lastError }, 'libvirt host unreachable: its desktops are reported unreachable, nothing is placed there');
    };
    this.volumes = new Volumes(this.virsh);
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 90_000;
    if (opts.hosts.length === 0) throw new Error(`libvirt provider ${opts.name} has no hosts configured.`);
    const seen = new Set<string>();
    for (const h of opts.hosts) {
      if (!NAME_RE.test(h.name)) throw new Error(`libvirt host name "${h.name}" is not valid.`);
      if (seen.has(h.name)) throw new Error(`libvirt host ${h.name} is configured twice.`);
      seen.add(h.name);
    }
    this.hostList = opts.hosts.map((h) => ({ ...h }));
  }

  // ---- hosts ---------------------------------------------------------------------------------

  async hosts(): Promise<HostInfo[]> {
    return Promise.all(this.hostList.map((h) => this.hostInfo(h)));
  }

  async setHostMaintenance(host: string, on: boolean): Promise<void> {
    this.host(host).maintenance = on;
    this.log.info({ host, maintenance: on }, 'host maintenance changed');
  }

  private async hostInfo(h: LibvirtHostConfig): Promise<HostInfo> {
    const reserved = [...this.reserved.values()].filter((r) => r.host === h.name);
    return hostInfo(this.virsh, h, reserved, () => this.scan(h), () => this.lastSeen.get(h.name) ?? []);
  }


  private host(name: string): LibvirtHostConfig {
    const h = this.hostList.find((x) => x.name === name);
    if (!h) throw new LibvirtError('failed', `Host ${name} is not configured on provider ${this.name}.`, name);
    return h;
  }

  private async scan(h: LibvirtHostConfig): Promise<OwnedDomain[]> {
    const owned = await ownedDomains(this.virsh, h, this.name);
    this.lastSeen.set(h.name, owned);
    return owned;
  }

  private virtType(h: LibvirtHostConfig): Promise<'kvm' | 'qemu'> {
    let p = this.virtTypes.get(h.name);
    if (!p) {
      p = probeVirtType(this.virsh, h, this.log);
      p.catch(() => this.virtTypes.delete(h.name));
      this.virtTypes.set(h.name, p);
    }
    return p;
  }

  // ---- desktops ------------------------------------------------------------------------------

  async create(spec: DesktopSpec, opts?: OperationOptions): Promise<CreateResult> {
    validateSpec(spec);
    return this.locked(spec.id, async () => {
      const existing = await this.locate(spec.id);
      if (existing) return { host: existing.host.name };
      opts?.signal?.throwIfAborted();
      const hostName = placeOn(await this.hosts(), spec.resources, this.opts.placement ?? 'breadth', spec.host || undefined);
      const h = this.host(hostName);
      this.reserved.set(spec.id, { host: h.name, vcpu: spec.resources.vcpu, memoryMiB: spec.resources.memoryMiB });
      try {
        await refuseForeignName(this.virsh, h, spec.name);
        const image = await this.imageOn(h, spec.image);
        const vol = desktopVolume(spec.id);
        const made = !(await this.volumes.exists(h, vol));
        await this.volumes.createDisk(h, vol, spec.clone, image, Math.round((spec.resources.diskGiB || 0) * 1024 ** 3));
        try {
          await this.define(h, spec, image, newVncPassword(), await this.agentSecretOn(h, spec));
        } catch (e) {
          if (made) await this.volumes.remove(h, vol).catch(() => undefined);
          await removeAgentSecret(this.virsh, h, spec.id).catch(() => undefined);
          throw e;
        }
      } finally {
        this.reserved.delete(spec.id);
      }
      this.log.info({ desktop: spec.id, name: spec.name, host: h.name, clone: spec.clone }, 'desktop created');
      return { host: h.name };
    });
  }

  async start(id: string, opts?: OperationOptions): Promise<void> {
    await this.locked(id, async () => {
      opts?.signal?.throwIfAborted();
      await this.startLocked(await this.mustLocate(id));
    });
  }

  async stop(id: string, opts?: OperationOptions & { timeoutMs?: number }): Promise<void> {
    await this.locked(id, async () => {
      const loc = await this.locate(id);
      if (loc) await this.stopLocked(loc, opts?.timeoutMs ?? this.stopTimeoutMs);
    });
  }

  async reboot(id: string, opts?: OperationOptions & { hard?: boolean }): Promise<void> {
    await this.locked(id, async () => {
      const loc = await this.mustLocate(id);
      if ((await domainInfo(this.virsh, loc.host, loc.uuid)).power !== 'running') throw new LibvirtError('failed', `Desktop ${id} is not running.`, loc.host.name);
      if (opts?.hard) {
        await this.virsh.run(loc.host, ['reset', loc.uuid]);
      } else {
        // Ctrl-Alt-Del, as the QEMU driver: the guest's init reboots cleanly.
        await this.virsh.run(loc.host, ['send-key', loc.uuid, 'KEY_LEFTCTRL', 'KEY_LEFTALT', 'KEY_DELETE']);
      }
      this.log.info({ desktop: id, hard: !!opts?.hard }, 'desktop rebooted');
    });
  }

  async destroy(id: string, opts?: OperationOptions): Promise<void> {
    if (!ID_RE.test(id)) throw new BrokerError('validation_failed', `Desktop id "${id}" is not valid.`);
    await this.locked(id, async () => {
      opts?.signal?.throwIfAborted();
      const loc = await this.locate(id);
      if (loc) {
        await this.virsh.run(loc.host, ['destroy', loc.uuid]).catch((e) => {
          if (!/not running/i.test((e as Error).message) && !isFailure(e, 'no_domain')) throw e;
        });
        await this.virsh.run(loc.host, ['undefine', loc.uuid, '--snapshots-metadata', '--managed-save']).catch((e) => {
          if (!isFailure(e, 'no_domain')) throw e;
        });
      }
      // The disk on every host that answers (a half-made desktop may have left one anywhere).
      for (const h of this.hostList) {
        try {
          if (await this.volumes.remove(h, desktopVolume(id))) this.log.info({ desktop: id, host: h.name }, 'desktop volume deleted');
          await removeAgentSecret(this.virsh, h, id);
        } catch (e) {
          if (loc?.host === h || !isFailure(e, 'unreachable', 'timeout', 'no_pool')) throw e;
        }
      }
      this.passwords.delete(id);
      if (loc) this.log.info({ desktop: id, host: loc.host.name }, 'desktop destroyed');
    });
  }

  async refresh(spec: DesktopSpec, opts?: OperationOptions): Promise<void> {
    validateSpec(spec);
    if (!(await this.locate(spec.id))) {
      await this.create(spec, opts);
      await this.start(spec.id, opts);
      return;
    }
    await this.locked(spec.id, async () => {
      const loc = await this.mustLocate(spec.id);
      // The image is resolved (and uploaded) first: a bad image leaves the desktop as it was.
      const image = await this.imageOn(loc.host, spec.image);
      const password = await this.password(loc);
      await this.virsh.run(loc.host, ['destroy', loc.uuid]).catch((e) => {
        if (!/not running/i.test((e as Error).message)) throw e;
      });
      // Snapshots lived in the old overlay.
      for (const s of await listSnapshots(this.virsh, loc.host, loc.uuid)) {
        await this.virsh.run(loc.host, ['snapshot-delete', loc.uuid, s.name, '--metadata']);
      }
      const vol = desktopVolume(spec.id);
      await this.volumes.remove(loc.host, vol);
      await this.volumes.createDisk(loc.host, vol, spec.clone, image, Math.round((spec.resources.diskGiB || 0) * 1024 ** 3));
      await this.define(loc.host, spec, image, password, await this.agentSecretOn(loc.host, spec));
      this.log.info({ desktop: spec.id, host: loc.host.name }, 'desktop refreshed from its image');
      opts?.signal?.throwIfAborted();
      await this.startLocked(loc);
    });
  }

  async power(id: string): Promise<PowerState> {
    let loc: Located | undefined;
    try {
      loc = await this.locate(id);
    } catch (e) {
      if (isFailure(e, 'unreachable', 'timeout')) return 'unreachable';
      throw e;
    }
    if (!loc) return 'missing';
    try {
      return (await domainInfo(this.virsh, loc.host, loc.uuid)).power;
    } catch (e) {
      if (isFailure(e, 'unreachable', 'timeout')) return 'unreachable';
      if (isFailure(e, 'no_domain')) return 'missing';
      throw e;
    }
  }

  // ---- snapshots -------------------------------------------------------------------------------

  async snapshotCreate(id: string, name: string): Promise<Snapshot> {
    checkSnapshotName(name);
    return this.locked(id, async () => {
      const loc = await this.mustLocate(id);
      const snap = await createSnapshot(this.virsh, loc.host, loc.uuid, name);
      this.log.info({ desktop: id, snapshot: name }, 'snapshot created');
      return snap;
    });
  }

  async snapshotList(id: string): Promise<Snapshot[]> {
    const loc = await this.mustLocate(id);
    return listSnapshots(this.virsh, loc.host, loc.uuid);
  }

  async snapshotRevert(id: string, name: string): Promise<void> {
    checkSnapshotName(name);
    await this.locked(id, async () => {
      const loc = await this.mustLocate(id);
      await revertSnapshot(this.virsh, loc.host, loc.uuid, name);
      this.log.info({ desktop: id, snapshot: name }, 'desktop reverted to snapshot');
    });
  }

  async snapshotDelete(id: string, name: string): Promise<void> {
    checkSnapshotName(name);
    await this.locked(id, async () => {
      const loc = await this.mustLocate(id);
      await deleteSnapshot(this.virsh, loc.host, loc.uuid, name);
      this.log.info({ desktop: id, snapshot: name }, 'snapshot deleted');
    });
  }

  // ---- migration, console, inventory -----------------------------------------------------------

  async migrate(id: string, targetHost: string, opts?: MigrateOptions): Promise<MigrationResult> {
    return this.locked(id, async () => {
      const loc = await this.mustLocate(id);
      const target = this.host(targetHost);
      if (target.name === loc.host.name) return { fromHost: loc.host.name, toHost: target.name, durationMs: 0 };
      const info = await domainInfo(this.virsh, loc.host, loc.uuid);
      placeOn(await this.hosts(), info, 'depth', target.name);
      if (info.power !== 'running') {
        throw new BrokerError('not_supported', `Desktop ${id} is not running: the libvirt driver moves running desktops only (start it first).`);
      }
      const shared = !!loc.host.sharedStorage && !!target.sharedStorage && loc.host.storagePool === target.storagePool;
      // The image's files where the target has them (uploaded there now unless shared), and
      // the target pool's view of a shared pool brought up to date.
      const image = await this.imageOn(target, (await metadataOf(this.virsh, loc.host, loc.uuid))?.image ?? '');
      await this.virsh.run(target, ['pool-refresh', target.storagePool]);
      // The guest agent's secret file must be on the target when its QEMU starts (fw_cfg is
      // read at startup): the shared pool has it, otherwise it is copied over first.
      const secret = await readAgentSecret(this.virsh, loc.host, id);
      const secretFile = !secret ? undefined
        : shared ? await this.volumes.path(target, agentSecretVolume(id)) : await writeAgentSecret(this.virsh, target, id, secret, await this.qemuOwner(target));
      const result = await liveMigrate({
        virsh: this.virsh, source: loc.host, target, dom: loc.uuid, sharedStorage: shared,
        on: {
          consoleAddress: target.consoleAddress, ...image.boot,
          ...(target.serialSocketDir ? { serialSocket: `${target.serialSocketDir.replace(/\/$/, '')}/${id}.serial` } : {}),
          agentSocket: this.agentDevices(target, id).socket ?? null,
          ...(secretFile ? { agentSecretFile: secretFile } : {}),
        },
        timeoutMs: this.opts.migrateTimeoutMs ?? 600_000, ...(opts?.signal ? { signal: opts.signal } : {}),
        ...(opts?.onProgress ? { onProgress: opts.onProgress } : {}),
      }).catch(async (e: unknown) => {
        // The copy of the secret is not left on a host the desktop did not move to.
        if (secretFile && !shared) await removeAgentSecret(this.virsh, target, id).catch(() => undefined);
        throw e;
      });
      // A copied disk (and secret) leaves its source volume behind.
      if (!shared) {
        await this.volumes.remove(loc.host, desktopVolume(id)).catch(() => undefined);
        await removeAgentSecret(this.virsh, loc.host, id).catch(() => undefined);
      }
      this.log.info({ desktop: id, from: result.fromHost, to: result.toHost, ms: result.durationMs, shared }, 'desktop migrated');
      return result;
    });
  }

  /**
   * The desktop's guest agent ports. Each call of a factory finds the desktop's host afresh, so
   * a caller that reconnects after the stream closed (guest rebooted, desktop migrated) reaches
   * it where it runs now.
   */
  async agentChannels(id: string): Promise<AgentChannels> {
    if (!ID_RE.test(id)) throw new BrokerError('validation_failed', `Desktop id "${id}" is not valid.`);
    return {
      vdi: async () => {
        const loc = await this.mustLocate(id);
        const how = channelTransport(loc.host);
        if (how === 'none') {
          throw new LibvirtError('failed', `The guest agent of desktop ${id} cannot be reached on host ${loc.host.name}: use a qemu+ssh URI, or agentSocketDir on a folder this machine shares.`, loc.host.name);
        }
        const path = channelSocket(await this.virsh.run(loc.host, ['dumpxml', loc.uuid]), AGENT_PORT);
        if (!path) throw new LibvirtError('failed', `Desktop ${id} has no guest agent channel (created before the agent; refresh it).`, loc.host.name);
        return how === 'ssh' ? connectOverSsh(this.virsh, loc.host, path) : connectUnix(path);
      },
      qga: async () => {
        const loc = await this.mustLocate(id);
        return new QgaOverVirsh(this.virsh, loc.host, loc.uuid);
      },
    };
  }

  async console(id: string): Promise<ConsoleEndpoint> {
    return this.locked(id, async () => {
      const loc = await this.mustLocate(id);
      const display = parseDisplay(await this.virsh.run(loc.host, ['domdisplay', loc.uuid, '--type', 'vnc']));
      if (!display) throw new LibvirtError('failed', `Desktop ${id} is not running or has no VNC console.`, loc.host.name);
      return { protocol: 'vnc', host: loc.host.consoleAddress, port: display.port, password: await this.password(loc) };
    });
  }

  async inventory(): Promise<InventoryItem[]> {
    const items: InventoryItem[] = [];
    for (const h of this.hostList) {
      try {
        for (const d of await this.scan(h)) items.push({ desktopId: d.meta.id, host: h.name, power: d.power });
      } catch (e) {
        if (!isFailure(e, 'unreachable', 'timeout')) throw e;
        const last = this.lastSeen.get(h.name);
        // Without a last view of the host its desktops cannot be told from missing ones: no
        // inventory at all this round rather than desktops wrongly marked missing.
        if (!last) throw new LibvirtError('unreachable', `Host ${h.name} has not been seen since the broker started; inventory postponed. ${(e as Error).message}`, h.name);
        for (const d of last) items.push({ desktopId: d.meta.id, host: h.name, power: 'unreachable' });
      }
    }
    return items;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.locks.values()]);
  }

  // ---- internals -------------------------------------------------------------------------------

  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const result = prev.then(fn);
    const tail = result.then(() => undefined, () => undefined);
    this.locks.set(id, tail);
    try {
      return await result;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  /**
   * The host holding the desktop's domain (found by its UUID, confirmed by our metadata). Throws
   * when it is not found but a host that might hold it does not answer.
   */
  private async locate(id: string): Promise<Located | undefined> {
    if (!ID_RE.test(id)) return undefined;
    const uuid = desktopUuid(id);
    const known = [...this.lastSeen.entries()].find(([, ds]) => ds.some((d) => d.meta.id === id))?.[0];
    const order = [...this.hostList].sort((a, b) => Number(b.name === known) - Number(a.name === known));
    let unreachable: LibvirtError | undefined;
    for (const h of order) {
      try {
        const meta = await metadataOf(this.virsh, h, uuid);
        if (meta?.id === id && meta.provider === this.name) return { host: h, uuid };
      } catch (e) {
        if (!isFailure(e, 'unreachable', 'timeout')) throw e;
        unreachable ??= e as LibvirtError;
      }
    }
    if (unreachable) throw new LibvirtError('unreachable', `Desktop ${id} cannot be located: ${unreachable.message}`, unreachable.host);
    return undefined;
  }

  private async mustLocate(id: string): Promise<Located> {
    const loc = await this.locate(id);
    if (!loc) throw new LibvirtError('no_domain', `Desktop ${id} does not exist on provider ${this.name}.`, '');
    return loc;
  }

  /** A domain with the desktop's name that is not ours is never touched: creation is refused. */
  private startLocked(loc: Located): Promise<void> {
    return powerOn(this.virsh, loc, { timeoutMs: this.startTimeoutMs, log: this.log, ...(this.opts.consoleBanner ? { banner: this.opts.consoleBanner } : {}) });
  }

  private stopLocked(loc: Located, timeoutMs: number): Promise<void> {
    return powerOff(this.virsh, loc, timeoutMs, this.log);
  }

  private imageOn(h: LibvirtHostConfig, ref: string): Promise<ImageOnHost> {
    const key = `${h.name}\n${ref}`;
    let p = this.images.get(key);
    if (!p) {
      p = (async () => this.volumes.ensureImage(h, ref, await this.opts.images(ref)))();
      p.catch(() => this.images.delete(key));
      this.images.set(key, p);
    }
    return p;
  }

  private async define(h: LibvirtHostConfig, spec: DesktopSpec, image: ImageOnHost, password: string, secretFile?: string): Promise<void> {
    const xml = domainXml({
      agent: { ...this.agentDevices(h, spec.id), ...(secretFile ? { secretFile } : {}) },
      spec, uuid: desktopUuid(spec.id), virtType: await this.virtType(h), storagePool: h.storagePool, volume: desktopVolume(spec.id),
      boot: image.boot, consoleAddress: h.consoleAddress, password, network: h.network ?? 'default',
      meta: { id: spec.id, pool: spec.pool, name: spec.name, image: spec.image, clone: spec.clone, provider: this.name },
      ...(h.serialSocketDir ? { serialSocket: `${h.serialSocketDir.replace(/\/$/, '')}/${spec.id}.serial` } : {}),
    });
    // The XML carries the console password: a private temp file (0600, removed at once), never a log line.
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vdi-domain-'));
    try {
      const file = path.join(dir, 'domain.xml');
      await fsp.writeFile(file, xml, { mode: 0o600 });
      await this.virsh.run(h, ['define', file], { retries: 0 });
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
    this.passwords.set(spec.id, password);
  }

  /** Our agent port's socket on a host: in its agentSocketDir, else libvirt's channel folder. */
  private agentDevices(h: LibvirtHostConfig, id: string): AgentDevices {
    return h.agentSocketDir ? { socket: `${h.agentSocketDir.replace(/\/$/, '')}/${id}.agent` } : {};
  }

  /** Writes the desktop's agent secret into the host's pool (when the broker gave one); its path there. */
  private async agentSecretOn(h: LibvirtHostConfig, spec: DesktopSpec): Promise<string | undefined> {
    if (!spec.agentSecret) return undefined;
    return writeAgentSecret(this.virsh, h, spec.id, spec.agentSecret, await this.qemuOwner(h));
  }

  private qemuOwner(h: LibvirtHostConfig): Promise<{ uid: number; gid: number } | undefined> {
    let p = this.qemuOwners.get(h.name);
    if (!p) {
      p = (async () => qemuOwner(await this.virsh.run(h, ['capabilities']), await this.virtType(h)))();
      p.catch(() => this.qemuOwners.delete(h.name));
      this.qemuOwners.set(h.name, p);
    }
    return p;
  }

  /** The console password: set by this instance, or read back from the domain after a restart. */
  private async password(loc: Located): Promise<string> {
    const id = (await metadataOf(this.virsh, loc.host, loc.uuid))?.id ?? '';
    const known = this.passwords.get(id);
    if (known) return known;
    const pw = graphicsPassword(await this.virsh.run(loc.host, ['dumpxml', loc.uuid, '--security-info', '--inactive']));
    if (!pw) throw new LibvirtError('failed', `Desktop ${id} has no console password set.`, loc.host.name);
    this.passwords.set(id, pw);
    return pw;
  }
}
