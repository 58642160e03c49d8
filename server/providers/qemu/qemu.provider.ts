import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { BrokerError } from '../../errors.ts';
import type {
  AgentChannels, ConsoleEndpoint, CreateResult, DesktopSpec, InventoryItem, MigrationResult, OperationOptions, PowerState, Provider,
  ProviderCapabilities, Snapshot,
  HostInfo,
} from '../provider.ts';
import type { Accelerator, ImageFiles, QemuHostConfig, QemuProviderOptions } from './config.ts';
import { type HostStatus, type HostUsage, effectiveCapacity, placeDesktop } from './hosts.ts';
import {
  type DesktopPaths, type DesktopState, desktopPaths, desktopsDir, isDesktopProcess, killProcess, launchQemu, newVncPassword,
  probeKvm, probeKvmBoot, qemuArgs, readPid, readState, sleep, vncHello, waitForExit, writeState,
} from './machine.ts';
import { type QemuInventoryItem, allStates, withoutSecret, writeAgentSecret, buildDesktopDir, checkSocketPaths, clearLeftover, ensureDesktopsDir, scanInventory } from './desktop-dirs.ts';
import { Disks } from './disks.ts';
import { liveMigrate } from './migrate.ts';
import { type QmpClient, withQmp } from './qmp.ts';
import { ID_RE, NAME_RE, checkDuplicates, checkSnapshotName, validateSpec } from './validate.ts';

// The embedded hypervisor: one detached qemu-system-x86_64 per desktop, no daemon. All state
// lives in the hosts' data directories, so a new instance (a restarted broker) finds running
// desktops through their state files, pid files and QMP sockets and leaves them running.

/** The host's newest installed kernel, if readable (a boot probe for KVM). */
function hostKernel(): string | undefined {
  try {
    const v = fs.readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-'));
    v.sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    const file = v.at(-1);
    if (!file) return undefined;
    fs.accessSync(path.join('/boot', file), fs.constants.R_OK);
    return path.join('/boot', file);
  } catch {
    return undefined;
  }
}

interface Located {
  host: QemuHostConfig;
  paths: DesktopPaths;
  state: DesktopState;
}


export class QemuProvider implements Provider {
  readonly kind = 'qemu';
  readonly name: string;
  readonly capabilities: ProviderCapabilities = {
    linkedClones: true, fullClones: true, refresh: true, snapshots: true, liveMigration: true, consoleProtocols: ['vnc'],
  };

  private readonly hostList: QemuHostConfig[];
  private readonly log: Logger;
  private readonly qemu: string;
  private readonly stopTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private accelPromise: Promise<Accelerator> | undefined;
  /** VNC passwords set by this instance (a new instance sets fresh ones; never written anywhere). */
  private readonly passwords = new Map<string, string>();
  private readonly locks = new Map<string, Promise<void>>();
  private readonly reserved = new Map<string, { host: string; vcpu: number; memoryMiB: number }>();
  private readonly disks: Disks;

  constructor(private readonly opts: QemuProviderOptions) {
    this.name = opts.name;
    this.log = opts.logger.child({ provider: opts.name, driver: 'qemu' });
    this.qemu = opts.qemuBinary ?? 'qemu-system-x86_64';
    this.disks = new Disks(opts.qemuImgBinary ?? 'qemu-img');
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    if (opts.hosts.length === 0) throw new Error(`QEMU provider ${opts.name} has no hosts configured.`);
    const seen = new Set<string>();
    for (const h of opts.hosts) {
      if (!NAME_RE.test(h.name)) throw new Error(`QEMU host name "${h.name}" is not valid.`);
      if (seen.has(h.name)) throw new Error(`QEMU host ${h.name} is configured twice.`);
      seen.add(h.name);
      if (!(h.capacity.vcpu > 0 && h.capacity.memoryMiB > 0)) throw new Error(`QEMU host ${h.name} needs a positive capacity.`);
    }
    this.hostList = opts.hosts.map((h) => ({ ...h, dataDir: path.resolve(h.dataDir), consoleAddress: h.consoleAddress ?? '127.0.0.1' }));
  }

  // ---- driver-specific API -------------------------------------------------------------

  /**
   * The accelerator in use, probed once: KVM when a vCPU really runs (and boots `kernel`, the
   * first desktop's, else the host's newest /boot/vmlinuz-*, when there is one), otherwise TCG.
   */
  accelerator(kernel?: string): Promise<Accelerator> {
    this.accelPromise ??= (async () => {
      const want = this.opts.accel ?? 'auto';
      if (want === 'tcg') {
        this.log.info({ accel: 'tcg' }, 'QEMU accelerator: tcg (configured)');
        return 'tcg';
      }
      let probe = await probeKvm(this.qemu);
      const bootable = kernel ?? hostKernel();
      if (probe.ok && bootable) probe = await probeKvmBoot(this.qemu, bootable);
      if (probe.ok) {
        this.log.info({ accel: 'kvm' }, 'QEMU accelerator: kvm');
        return 'kvm';
      }
      if (want === 'kvm') throw new Error(`KVM was configured but does not work here: ${probe.reason}`);
      this.log.warn({ accel: 'tcg', reason: probe.reason }, 'KVM does not work on this machine; QEMU falls back to TCG (software emulation, slow)');
      return 'tcg';
    })();
    return this.accelPromise;
  }

  async hostStatus(): Promise<HostStatus[]> {
    const usage = this.usage(await allStates(this.hostList));
    return this.hostList.map((h) => ({
      name: h.name, dataDir: h.dataDir, consoleAddress: h.consoleAddress ?? '127.0.0.1', maintenance: !!h.maintenance,
      capacity: effectiveCapacity(h), used: usage.get(h.name) ?? { vcpu: 0, memoryMiB: 0, desktops: 0 },
    }));
  }

  async hosts(): Promise<HostInfo[]> {
    return (await this.hostStatus()).map(({ name, maintenance, capacity, used }) => ({ name, maintenance, capacity, used }));
  }

  async setHostMaintenance(host: string, on: boolean): Promise<void> {
    this.setMaintenance(host, on);
  }

  /** Drain a host (no new desktops) or put it back in service. */
  setMaintenance(host: string, on: boolean): void {
    const h = this.hostList.find((x) => x.name === host);
    if (!h) throw new Error(`Host ${host} is not configured.`);
    h.maintenance = on;
    this.log.info({ host, maintenance: on }, 'host maintenance changed');
  }

  /** Unix socket of the desktop's serial console (a shell on ttyS0 in the demo image) and its log. */
  async serial(id: string): Promise<{ socket: string; log: string }> {
    const loc = await this.mustLocate(id);
    return { socket: loc.paths.serial, log: loc.paths.serialLog };
  }

  /**
   * The desktop's guest agent ports (docs/agent.md). Each connect locates the desktop afresh,
   * so a caller reconnecting after a restart or a live migration reaches it where it runs now.
   */
  async agentChannels(id: string): Promise<AgentChannels> {
    if (!ID_RE.test(id)) throw new Error(`Desktop id "${id}" is not valid.`);
    const connect = (which: 'agent' | 'qga') => async (): Promise<Duplex> => connectUnix((await this.mustLocate(id)).paths[which]);
    return { vdi: connect('agent'), qga: connect('qga') };
  }

  /** Pid of the desktop's QEMU process, when running. */
  async pid(id: string): Promise<number | undefined> {
    const loc = await this.locate(id);
    if (!loc) return undefined;
    const pid = loc.state.pid ?? (await readPid(loc.paths.pidfile));
    return isDesktopProcess(pid, loc.paths.dir) ? pid : undefined;
  }

  /** Writes a PNG of the desktop's screen (helpdesk thumbnails, tests). */
  async screenshot(id: string, file: string): Promise<void> {
    const loc = await this.mustRun(id);
    await withQmp(loc.paths.qmp, (q) => q.execute('screendump', { filename: path.resolve(file), format: 'png' }));
  }

  /** The state file of a desktop (spec, host, port, pid), for the helpdesk and tests. */
  async describe(id: string): Promise<(DesktopState & { disk: string; dir: string }) | undefined> {
    const loc = await this.locate(id);
    return loc ? { ...loc.state, disk: loc.paths.disk, dir: loc.paths.dir } : undefined;
  }

  // ---- Provider ----------------------------------------------------------------------------

  async create(spec: DesktopSpec, opts?: OperationOptions): Promise<CreateResult> {
    validateSpec(spec);
    return this.locked(spec.id, async () => {
      const existing = await this.locate(spec.id);
      if (existing) return { host: existing.host.name };
      opts?.signal?.throwIfAborted();
      const image = await this.resolveImage(spec.image);
      const states = await allStates(this.hostList);
      checkDuplicates(spec, states);
      const host = placeDesktop(this.hostList, this.usage(states), spec.resources, this.opts.placement ?? 'breadth', spec.host || undefined);
      this.reserved.set(spec.id, { host: host.name, vcpu: spec.resources.vcpu, memoryMiB: spec.resources.memoryMiB });
      try {
        await buildDesktopDir(spec, image, host, this.disks, this.log);
      } finally {
        this.reserved.delete(spec.id);
      }
      this.log.info({ desktop: spec.id, name: spec.name, host: host.name, clone: spec.clone }, 'desktop created');
      return { host: host.name };
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
      const loc = await this.mustRun(id);
      await withQmp(loc.paths.qmp, async (q) => {
        if (opts?.hard) {
          await q.execute('system_reset');
        } else {
          // Ctrl-Alt-Del: the guest's init reboots cleanly; a guest that ignores it is reset.
          await q.execute('send-key', { keys: ['ctrl', 'alt', 'delete'].map((k) => ({ type: 'qcode', data: k })) });
          try {
            await q.waitEvent('RESET', this.stopTimeoutMs);
          } catch {
            this.log.warn({ desktop: id }, 'guest ignored the reboot request; resetting');
            await q.execute('system_reset');
          }
        }
        const status = await q.execute<{ status: string }>('query-status');
        if (status.status === 'paused') await q.execute('cont');
      });
      this.log.info({ desktop: id, hard: !!opts?.hard }, 'desktop rebooted');
    });
  }

  async destroy(id: string, opts?: OperationOptions): Promise<void> {
    if (!ID_RE.test(id)) throw new Error(`Desktop id "${id}" is not valid.`);
    await this.locked(id, async () => {
      opts?.signal?.throwIfAborted();
      for (const host of this.hostList) {
        const p = desktopPaths(host.dataDir, id);
        if (!fs.existsSync(p.dir)) continue;
        const state = await readState(p.state).catch(() => undefined);
        await this.killDesktop(state?.pid ?? (await readPid(p.pidfile)), p);
        await fsp.rm(p.dir, { recursive: true, force: true });
        this.log.info({ desktop: id, host: host.name }, 'desktop destroyed');
      }
      this.passwords.delete(id);
    });
  }

  async refresh(spec: DesktopSpec, opts?: OperationOptions): Promise<void> {
    validateSpec(spec);
    const exists = await this.locate(spec.id);
    if (!exists) {
      await this.create(spec, opts);
      await this.start(spec.id, opts);
      return;
    }
    await this.locked(spec.id, async () => {
      const loc = await this.mustLocate(spec.id);
      // The new disk is made first (possibly from a new image version): a bad image leaves the desktop as it was.
      const image = await this.resolveImage(spec.image);
      const diskBytes = Math.max(await this.disks.virtualSize(image.disk), Math.round((spec.resources.diskGiB || 0) * 1024 ** 3));
      const fresh = `${loc.paths.disk}.new`;
      try {
        await this.disks.clone(spec.clone, image.disk, fresh, diskBytes);
      } catch (e) {
        await fsp.rm(fresh, { force: true });
        throw e;
      }
      const state: DesktopState = { ...loc.state, spec: withoutSecret({ ...spec, host: loc.host.name }), image, diskBytes, pid: undefined, vncPort: undefined };
      if (spec.agentSecret) await writeAgentSecret(loc.paths.agentSecret, spec.agentSecret);
      // The old disk is thrown away, so there is nothing to shut down gracefully.
      await this.killDesktop(loc.state.pid ?? (await readPid(loc.paths.pidfile)), loc.paths);
      await fsp.rename(fresh, loc.paths.disk);
      await writeState(loc.paths.state, state);
      this.log.info({ desktop: spec.id, host: loc.host.name }, 'desktop refreshed from its image');
      opts?.signal?.throwIfAborted();
      await this.startLocked({ ...loc, state });
    });
  }

  async power(id: string): Promise<PowerState> {
    const loc = await this.locate(id);
    if (!loc) return 'missing';
    return this.powerOf(loc);
  }

  async snapshotCreate(id: string, name: string): Promise<Snapshot> {
    checkSnapshotName(name);
    return this.locked(id, async () => {
      const loc = await this.mustLocate(id);
      if ((await this.disks.snapshots(loc.paths.disk)).some((s) => s.name === name)) throw new Error(`Snapshot ${name} of desktop ${id} already exists.`);
      if (await this.running(loc)) {
        await withQmp(loc.paths.qmp, (q) => q.hmp(`savevm ${name}`));
      } else {
        await this.disks.offlineSnapshot('create', name, loc.paths.disk);
      }
      const snap = (await this.disks.snapshots(loc.paths.disk)).find((s) => s.name === name);
      if (!snap) throw new Error(`Snapshot ${name} of desktop ${id} was not recorded by QEMU.`);
      this.log.info({ desktop: id, snapshot: name }, 'snapshot created');
      return snap;
    });
  }

  async snapshotList(id: string): Promise<Snapshot[]> {
    return this.disks.snapshots((await this.mustLocate(id)).paths.disk);
  }

  async snapshotRevert(id: string, name: string): Promise<void> {
    checkSnapshotName(name);
    await this.locked(id, async () => {
      const loc = await this.mustLocate(id);
      if (!(await this.disks.snapshots(loc.paths.disk)).some((s) => s.name === name)) throw new Error(`Desktop ${id} has no snapshot ${name}.`);
      if (await this.running(loc)) {
        await withQmp(loc.paths.qmp, async (q) => {
          await q.hmp(`loadvm ${name}`);
          const status = await q.execute<{ status: string }>('query-status');
          if (status.status !== 'running') await q.execute('cont');
        });
      } else {
        await this.disks.offlineSnapshot('apply', name, loc.paths.disk);
      }
      this.log.info({ desktop: id, snapshot: name }, 'desktop reverted to snapshot');
    });
  }

  async snapshotDelete(id: string, name: string): Promise<void> {
    checkSnapshotName(name);
    await this.locked(id, async () => {
      const loc = await this.mustLocate(id);
      if (!(await this.disks.snapshots(loc.paths.disk)).some((s) => s.name === name)) return;
      if (await this.running(loc)) await withQmp(loc.paths.qmp, (q) => q.hmp(`delvm ${name}`));
      else await this.disks.offlineSnapshot('delete', name, loc.paths.disk);
      this.log.info({ desktop: id, snapshot: name }, 'snapshot deleted');
    });
  }

  async migrate(id: string, targetHost: string, opts?: OperationOptions): Promise<MigrationResult> {
    return this.locked(id, async () => {
      const loc = await this.mustLocate(id);
      const target = this.hostList.find((h) => h.name === targetHost);
      if (!target) throw new Error(`Host ${targetHost} is not configured.`);
      if (target.name === loc.host.name) return { fromHost: loc.host.name, toHost: target.name, durationMs: 0 };
      const usage = this.usage(await allStates(this.hostList));
      placeDesktop(this.hostList, usage, loc.state.spec.resources, 'depth', target.name);
      opts?.signal?.throwIfAborted();
      const running = await this.running(loc);
      const tp = desktopPaths(target.dataDir, id);
      checkSocketPaths(tp, target);
      await ensureDesktopsDir(target);
      await clearLeftover(tp, this.log);
      if (!running) return this.coldMove(loc, target, tp);
      const password = this.passwords.get(id) ?? newVncPassword();
      const result = await liveMigrate({
        log: this.log.child({ desktop: id }),
        source: loc,
        target,
        targetPaths: tp,
        accel: await this.accelerator(),
        qemuBinary: this.qemu,
        // Linked: a fresh overlay on the same base (only the overlay is mirrored). Full: an empty
        // disk of the same size that the mirror fills.
        makeDisk: (file) => (loc.state.spec.clone === 'full'
          ? this.disks.createEmpty(file, loc.state.diskBytes)
          : this.disks.clone('linked', loc.state.image.disk, file, loc.state.diskBytes)),
        password,
        maxBandwidth: this.opts.migrationMaxBandwidth ?? 1024 * 1024 * 1024,
        guestForwards: this.opts.guestForwards,
        killDesktop: (pid, paths) => this.killDesktop(pid, paths),
      });
      this.passwords.set(id, password);
      return result;
    });
  }

  async console(id: string): Promise<ConsoleEndpoint> {
    return this.locked(id, async () => {
      const loc = await this.mustRun(id);
      let password = this.passwords.get(id);
      if (!password) {
        // Re-attached after a broker restart: the old password is not kept anywhere, set a new one.
        password = newVncPassword();
        const pw = password;
        await withQmp(loc.paths.qmp, (q) => q.execute('set_password', { protocol: 'vnc', password: pw }));
        this.passwords.set(id, password);
      }
      if (!loc.state.vncPort) throw new Error(`Desktop ${id} has no console port recorded.`);
      return { protocol: 'vnc', host: loc.host.consoleAddress ?? '127.0.0.1', port: loc.state.vncPort, password };
    });
  }

  async inventory(): Promise<QemuInventoryItem[]> {
    return scanInventory(this.hostList, (loc) => this.powerOf(loc));
  }

  async close(): Promise<void> {
    // Nothing runs in the background and QMP sessions are per operation: desktops keep running.
    await Promise.allSettled([...this.locks.values()]);
  }

  // ---- internals -------------------------------------------------------------------------

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

  private async locate(id: string): Promise<Located | undefined> {
    if (!ID_RE.test(id)) return undefined;
    for (const host of this.hostList) {
      const paths = desktopPaths(host.dataDir, id);
      const state = await readState(paths.state);
      if (state && !fs.existsSync(paths.incomingMarker)) return { host, paths, state };
    }
    return undefined;
  }

  private async mustLocate(id: string): Promise<Located> {
    const loc = await this.locate(id);
    if (!loc) throw new Error(`Desktop ${id} does not exist on provider ${this.name}.`);
    return loc;
  }

  private async mustRun(id: string): Promise<Located> {
    const loc = await this.mustLocate(id);
    if (!(await this.running(loc))) throw new Error(`Desktop ${id} is not running.`);
    return loc;
  }

  private async running(loc: Located): Promise<boolean> {
    return isDesktopProcess(loc.state.pid ?? (await readPid(loc.paths.pidfile)), loc.paths.dir);
  }

  private async powerOf(loc: Located): Promise<PowerState> {
    if (!(await this.running(loc))) return 'stopped';
    try {
      const s = await withQmp(loc.paths.qmp, (q) => q.execute<{ status: string }>('query-status'), 3000);
      if (s.status === 'running') return 'running';
      if (s.status === 'shutdown' || s.status === 'internal-error' || s.status === 'guest-panicked') return 'stopped';
      return 'paused';
    } catch {
      return 'running'; // the process lives; its monitor is busy with another client
    }
  }

  private usage(states: DesktopState[]): Map<string, HostUsage> {
    const usage = new Map<string, HostUsage>();
    const add = (host: string, vcpu: number, memoryMiB: number) => {
      const u = usage.get(host) ?? { vcpu: 0, memoryMiB: 0, desktops: 0 };
      usage.set(host, { vcpu: u.vcpu + vcpu, memoryMiB: u.memoryMiB + memoryMiB, desktops: u.desktops + 1 });
    };
    for (const s of states) add(s.host, s.spec.resources.vcpu, s.spec.resources.memoryMiB);
    for (const r of this.reserved.values()) add(r.host, r.vcpu, r.memoryMiB);
    return usage;
  }

  private async resolveImage(imageId: string): Promise<ImageFiles> {
    const image = await this.opts.images(imageId);
    for (const [what, file] of [['kernel', image.kernel], ['initrd', image.initrd], ['disk', image.disk]] as const) {
      if (file === undefined) continue;
      try {
        await fsp.access(file, fs.constants.R_OK);
      } catch (e) {
        throw new Error(`Image ${imageId} is missing its ${what} file ${file} (${(e as NodeJS.ErrnoException).code}); build or install the image first.`);
      }
    }
    return {
      ...image,
      ...(image.kernel ? { kernel: path.resolve(image.kernel) } : {}),
      ...(image.initrd ? { initrd: path.resolve(image.initrd) } : {}),
      disk: path.resolve(image.disk),
    };
  }

  private async startLocked(loc: Located): Promise<void> {
    const log = this.log.child({ desktop: loc.state.spec.id, host: loc.host.name });
    if (await this.running(loc)) {
      await withQmp(loc.paths.qmp, async (q) => {
        const s = await q.execute<{ status: string }>('query-status');
        if (s.status === 'paused') await q.execute('cont');
        await this.ensurePassword(loc.state.spec.id, q);
      });
      if (loc.state.vncPort) await this.waitConsole(loc.host, loc.state.vncPort, Date.now() + this.startTimeoutMs);
      return;
    }
    if (loc.host.maintenance) log.info('starting a desktop on a host in maintenance');
    const accel = await this.accelerator(loc.state.image.kernel);
    for (const f of [loc.paths.qmp, loc.paths.serial, loc.paths.pidfile, loc.paths.agent, loc.paths.qga]) await fsp.rm(f, { force: true });
    const args = qemuArgs({
      state: loc.state, paths: loc.paths, accel, consoleAddress: loc.host.consoleAddress ?? '127.0.0.1',
      vncDisplayBase: loc.host.vncDisplayBase ?? 200, guestForwards: this.opts.guestForwards,
      agentSecret: fs.existsSync(loc.paths.agentSecret),
    });
    const t0 = Date.now();
    const pid = await launchQemu(this.qemu, args, loc.paths.pidfile);
    try {
      const deadline = t0 + this.startTimeoutMs;
      const password = newVncPassword();
      const port = await withQmp(loc.paths.qmp, async (q) => {
        await q.execute('set_password', { protocol: 'vnc', password });
        while ((await q.execute<{ status: string }>('query-status')).status !== 'running') {
          if (Date.now() > deadline) throw new Error(`Desktop ${loc.state.spec.id} did not reach running state`);
          await sleep(100);
        }
        const vnc = await q.execute<{ service?: string }>('query-vnc');
        return Number(vnc.service);
      });
      this.passwords.set(loc.state.spec.id, password);
      const state: DesktopState = { ...loc.state, pid, accel, vncPort: port, startedAt: new Date().toISOString() };
      await writeState(loc.paths.state, state);
      loc.state = state;
      await this.waitConsole(loc.host, port, deadline);
      log.info({ pid, accel, port, ms: Date.now() - t0 }, 'desktop started');
    } catch (e) {
      await killProcess(pid, loc.paths.dir);
      throw e;
    }
  }

  private async ensurePassword(id: string, q: QmpClient): Promise<void> {
    if (this.passwords.has(id)) return;
    const password = newVncPassword();
    await q.execute('set_password', { protocol: 'vnc', password });
    this.passwords.set(id, password);
  }

  private async waitConsole(host: QemuHostConfig, port: number, deadline: number): Promise<void> {
    const addr = host.consoleAddress ?? '127.0.0.1';
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        const hello = await vncHello(addr, port, 2000);
        if (hello.version === 'RFB 003.008') return;
        last = new Error(`unexpected banner ${hello.version}`);
      } catch (e) {
        last = e;
      }
      await sleep(100);
    }
    throw new Error(`Console ${addr}:${port} did not answer: ${String(last)}`);
  }

  private async stopLocked(loc: Located, timeoutMs: number): Promise<void> {
    const pid = loc.state.pid ?? (await readPid(loc.paths.pidfile));
    if (isDesktopProcess(pid, loc.paths.dir) && pid) {
      try {
        await withQmp(loc.paths.qmp, (q) => q.execute('system_powerdown'), 3000);
      } catch (e) {
        this.log.warn({ desktop: loc.state.spec.id, err: String(e) }, 'ACPI power-off request failed');
      }
      if (!(await waitForExit(pid, loc.paths.dir, timeoutMs))) {
        this.log.warn({ desktop: loc.state.spec.id, timeoutMs }, 'guest did not power off in time; killing it');
        await this.killDesktop(pid, loc.paths);
      }
      this.log.info({ desktop: loc.state.spec.id }, 'desktop stopped');
    }
    for (const f of [loc.paths.qmp, loc.paths.serial, loc.paths.pidfile, loc.paths.agent, loc.paths.qga]) await fsp.rm(f, { force: true });
    if (loc.state.pid !== undefined || loc.state.vncPort !== undefined) {
      await writeState(loc.paths.state, { ...loc.state, pid: undefined, vncPort: undefined });
    }
    this.passwords.delete(loc.state.spec.id);
  }

  /** QMP quit (QEMU flushes and exits), then signals if needed. */
  private async killDesktop(pid: number | undefined, p: DesktopPaths): Promise<void> {
    if (!pid || !isDesktopProcess(pid, p.dir)) return;
    try {
      await withQmp(p.qmp, (q) => q.execute('quit').catch(() => undefined), 2000);
    } catch {
      // monitor unavailable: signals below
    }
    if (await waitForExit(pid, p.dir, 3000)) return;
    await killProcess(pid, p.dir);
  }

  private async coldMove(loc: Located, target: QemuHostConfig, tp: DesktopPaths): Promise<MigrationResult> {
    const t0 = Date.now();
    const tmp = await fsp.mkdtemp(path.join(desktopsDir(target.dataDir), `.${loc.state.spec.id}.moving-`));
    try {
      await fsp.copyFile(loc.paths.disk, path.join(tmp, 'disk.qcow2'));
      const result: MigrationResult = { fromHost: loc.host.name, toHost: target.name, durationMs: 0 };
      const state: DesktopState = { ...loc.state, host: target.name, spec: { ...loc.state.spec, host: target.name }, pid: undefined, vncPort: undefined };
      await writeState(path.join(tmp, 'state.json'), state);
      await fsp.rename(tmp, tp.dir);
      await fsp.rm(loc.paths.dir, { recursive: true, force: true });
      result.durationMs = Date.now() - t0;
      await writeState(tp.state, { ...state, lastMigration: result });
      this.log.info({ desktop: loc.state.spec.id, from: result.fromHost, to: result.toHost, ms: result.durationMs }, 'stopped desktop moved');
      return result;
    } catch (e) {
      await fsp.rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }
}

/** Connects to a QEMU chardev socket; rejects when nothing listens (QEMU not running). */
function connectUnix(file: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(file);
    sock.once('connect', () => {
      sock.removeListener('error', reject);
      resolve(sock);
    });
    sock.once('error', reject);
  });
}
