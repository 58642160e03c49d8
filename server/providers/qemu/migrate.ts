import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { Logger } from 'pino';
import type { MigrationResult } from '../provider.ts';
import type { Accelerator, QemuHostConfig } from './config.ts';
import {
  type DesktopPaths, type DesktopState, type GuestForward, isDesktopProcess, killProcess, launchQemu, qemuArgs, sleep, vncHello, writeState,
} from './machine.ts';
import { QmpClient } from './qmp.ts';

// Live migration between two hosts that do not share the desktop's overlay (each host has its
// own data directory; both see the image's read-only base):
//   1. target: new overlay on the same base, QEMU started with -incoming, NBD export of its disk;
//   2. source: drive-mirror of the overlay (sync=top) into that export until in sync;
//   3. source: migrate RAM and device state; the mirror keeps copying writes until the switch;
//   4. source: cancel the (synchronised) mirror; target: stop NBD; the target now runs;
//   5. console password set on the target, source QEMU quit, source files removed.
// Internal snapshots stay behind with the source overlay: they do not survive a migration.

export interface LiveMigrateInput {
  log: Logger;
  source: { host: QemuHostConfig; paths: DesktopPaths; state: DesktopState };
  target: QemuHostConfig;
  targetPaths: DesktopPaths;
  accel: Accelerator;
  qemuBinary: string;
  makeDisk: (file: string) => Promise<void>;
  password: string;
  maxBandwidth: number;
  guestForwards?: GuestForward[];
  killDesktop: (pid: number | undefined, paths: DesktopPaths) => Promise<void>;
}

interface MigrateInfo {
  status?: string;
  'error-desc'?: string;
  ram?: { transferred?: number };
  'total-time'?: number;
  downtime?: number;
}

export async function liveMigrate(i: LiveMigrateInput): Promise<MigrationResult> {
  const { source, target, targetPaths: tp, log } = i;
  const t0 = Date.now();
  const id = source.state.spec.id;
  let targetPid: number | undefined;
  let src: QmpClient | undefined;
  let dst: QmpClient | undefined;
  let migrationStarted = false;
  try {
    await fsp.mkdir(tp.dir, { recursive: false });
    await fsp.writeFile(tp.incomingMarker, `${source.host.name}\n`);
    await i.makeDisk(tp.disk);
    // The target QEMU hands the guest the same agent secret (fw_cfg is read at its start); its
    // agent ports are new sockets in the target directory, which the broker reconnects to.
    const secret = fs.existsSync(source.paths.agentSecret);
    if (secret) await fsp.copyFile(source.paths.agentSecret, tp.agentSecret);
    const tState: DesktopState = { ...source.state, host: target.name, spec: { ...source.state.spec, host: target.name }, pid: undefined, vncPort: undefined };
    const args = qemuArgs({
      state: tState, paths: tp, accel: i.accel, consoleAddress: target.consoleAddress ?? '127.0.0.1',
      vncDisplayBase: target.vncDisplayBase ?? 200, guestForwards: i.guestForwards, agentSecret: secret, incoming: true,
    });
    targetPid = await launchQemu(i.qemuBinary, args, tp.pidfile);
    dst = await QmpClient.connect(tp.qmp);
    await dst.execute('nbd-server-start', { addr: { type: 'unix', data: { path: tp.nbd } } });
    await dst.execute('block-export-add', { type: 'nbd', id: 'vdi-export', 'node-name': 'disk0', name: 'disk0', writable: true });

    src = await QmpClient.connect(source.paths.qmp);
    await src.execute('migrate-set-parameters', { 'max-bandwidth': i.maxBandwidth, 'downtime-limit': 300 });
    await src.execute('drive-mirror', {
      device: 'disk0', 'job-id': 'vdi-mirror', target: `nbd+unix:///disk0?socket=${tp.nbd}`, format: 'raw',
      sync: source.state.spec.clone === 'full' ? 'full' : 'top', mode: 'existing',
    });
    await src.waitEvent('BLOCK_JOB_READY', 300_000, (e) => e.data?.device === 'vdi-mirror');
    const tMem = Date.now();
    migrationStarted = true;
    await src.execute('migrate', { uri: `unix:${tp.incoming}` });
    let info: MigrateInfo = {};
    for (;;) {
      info = await src.execute<MigrateInfo>('query-migrate');
      if (info.status === 'completed') break;
      if (info.status === 'failed' || info.status === 'cancelled') throw new Error(`migration ${info.status}: ${info['error-desc'] ?? 'no reason given'}`);
      if (Date.now() - tMem > 600_000) throw new Error('migration did not finish within 10 minutes');
      await sleep(50);
    }
    // The source is paused now: the mirror is in sync and stops without losing anything.
    await src.execute('block-job-cancel', { device: 'vdi-mirror' });
    await src.waitEvent('BLOCK_JOB_COMPLETED', 30_000, (e) => e.data?.device === 'vdi-mirror').catch(() => undefined);
    await dst.execute('nbd-server-stop');
    const deadline = Date.now() + 30_000;
    while ((await dst.execute<{ status: string }>('query-status')).status !== 'running') {
      if (Date.now() > deadline) throw new Error('target did not resume after migration');
      await sleep(50);
    }
    await dst.execute('set_password', { protocol: 'vnc', password: i.password });
    const port = Number((await dst.execute<{ service?: string }>('query-vnc')).service);
    const durationMs = Date.now() - t0;
    const result: MigrationResult = {
      fromHost: source.host.name, toHost: target.name, durationMs, transferredBytes: info.ram?.transferred,
    };
    await writeState(tp.state, { ...tState, pid: targetPid, vncPort: port, startedAt: source.state.startedAt, lastMigration: result });
    await fsp.rm(tp.incomingMarker, { force: true });
    dst.close();
    dst = undefined;
    src.close();
    src = undefined;
    await i.killDesktop(source.state.pid, source.paths);
    await fsp.rm(source.paths.dir, { recursive: true, force: true });
    await vncHello(target.consoleAddress ?? '127.0.0.1', port, 5000);
    log.info({ from: result.fromHost, to: result.toHost, ms: durationMs, ramMs: info['total-time'], downtimeMs: info.downtime, transferredBytes: result.transferredBytes }, 'desktop live-migrated');
    return result;
  } catch (e) {
    log.error({ err: String(e), to: target.name }, 'live migration failed; the desktop stays on its source host');
    dst?.close();
    if (targetPid) await killProcess(targetPid, tp.dir);
    await fsp.rm(tp.dir, { recursive: true, force: true });
    if (src && !src.closed) {
      await src.execute('block-job-cancel', { device: 'vdi-mirror', force: true }).catch(() => undefined);
      if (migrationStarted) {
        await src.execute('migrate_cancel').catch(() => undefined);
        const s = await src.execute<{ status: string }>('query-status').catch(() => undefined);
        if (s && s.status !== 'running') await src.execute('cont').catch(() => undefined);
      }
      src.close();
    }
    if (!isDesktopProcess(source.state.pid, source.paths.dir)) log.error({ desktop: id }, 'source desktop is gone after a failed migration');
    throw e;
  }
}
