import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MigrationProgress, MigrationResult } from '../provider.ts';
import type { LibvirtHostConfig } from './config.ts';
import { AGENT_PORT, AGENT_SECRET_FWCFG, xmlEscape } from './domain-xml.ts';
import { LibvirtError, Virsh } from './virsh.ts';

// Live migration, peer to peer: the source daemon connects to the target's daemon itself
// (target.migrationUri, as the source host reaches it) and streams memory over
// target.migrationAddress. With a shared storage pool only memory moves; otherwise
// --copy-storage-all copies the disk (the target pool must have the same name). The domain
// XML sent along is the source's with what differs per host swapped in: the console's listen
// address, the kernel/initrd volumes' paths, the serial socket.

export interface TargetSpecifics {
  consoleAddress: string;
  kernel?: string;
  initrd?: string;
  serialSocket?: string;
  /** Our agent port's socket on the target; null: libvirt's default folder there. */
  agentSocket?: string | null;
  /** The agent secret's file on the target (fw_cfg). */
  agentSecretFile?: string;
}

export interface MigrateInput {
  virsh: Virsh;
  source: LibvirtHostConfig;
  target: LibvirtHostConfig;
  dom: string;
  sharedStorage: boolean;
  on: TargetSpecifics;
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: (p: MigrationProgress) => void;
}

const UNIT: Record<string, number> = { B: 1, bytes: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** A byte count from `virsh domjobinfo` ("Data processed:   12.345 MiB"). */
function bytesOf(job: string, label: string): number | undefined {
  const m = new RegExp(`^${label}:\\s*([\\d.]+)\\s*(\\w+)`, 'm').exec(job);
  return m ? Math.round(Number(m[1]) * (UNIT[m[2]!] ?? 1)) : undefined;
}

/** Progress of the job `virsh domjobinfo` shows (undefined when no migration runs yet). */
export function parseJobInfo(job: string): MigrationProgress | undefined {
  const total = bytesOf(job, 'Data total');
  const transferred = bytesOf(job, 'Data processed');
  if (!total || transferred === undefined) return undefined;
  const remaining = bytesOf(job, 'Data remaining') ?? Math.max(0, total - transferred);
  const percent = Math.min(100, Math.max(0, Math.round(((total - remaining) / total) * 1000) / 10));
  return { percent, transferredBytes: transferred, remainingBytes: remaining, totalBytes: total };
}

/**
 * Asks the source for the running job every intervalMs (a short virsh call each, never retried)
 * until stopped; failed or empty samples are skipped — progress is best effort.
 */
function pollProgress(virsh: Virsh, source: LibvirtHostConfig, dom: string, report: (p: MigrationProgress) => void, intervalMs = 500): () => Promise<void> {
  let stopped = false;
  let wake: () => void = () => undefined;
  const loop = (async () => {
    while (!stopped) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, intervalMs);
      });
      if (stopped) break;
      const job = await virsh.run(source, ['domjobinfo', dom], { timeoutMs: 5000, retries: 0 }).catch(() => '');
      const p = parseJobInfo(job);
      if (p && !stopped) report(p);
    }
  })();
  return async () => {
    stopped = true;
    wake();
    await loop;
  };
}

/** The domain XML for the target host (carries the console password: never logged). */
export function retarget(xml: string, on: TargetSpecifics): string {
  const addr = xmlEscape(on.consoleAddress);
  let out = xml.replace(/<graphics\b[^>]*>/g, (g) => g.replace(/\blisten=(['"])[^'"]*\1/, `listen='${addr}'`));
  out = out.replace(/(<listen\b[^>]*type=(['"])address\2[^>]*address=)(['"])[^'"]*\3/g, `$1'${addr}'`);
  if (on.kernel) out = out.replace(/<kernel>[^<]*<\/kernel>/, `<kernel>${xmlEscape(on.kernel)}</kernel>`);
  if (on.initrd) out = out.replace(/<initrd>[^<]*<\/initrd>/, `<initrd>${xmlEscape(on.initrd)}</initrd>`);
  if (on.serialSocket) {
    out = out.replace(/(<serial type=(['"])unix\2>\s*<source\b[^>]*path=)(['"])[^'"]*\3/, `$1'${xmlEscape(on.serialSocket)}'`);
  }
  if (on.agentSocket !== undefined) {
    const src = on.agentSocket === null ? "<source mode='bind'/>" : `<source mode='bind' path='${xmlEscape(on.agentSocket)}'/>`;
    out = out.replace(/<channel\b[^>]*>[\s\S]*?<\/channel>/g, (ch) => {
      if (!new RegExp(`<target\\b[^>]*name=(['"])${AGENT_PORT.replace(/\./g, '\\.')}\\1`).test(ch)) return ch;
      // libvirt leaves a default path out of migratable XML (no <source> at all).
      return /<source\b[^>]*\/>/.test(ch) ? ch.replace(/<source\b[^>]*\/>/, src) : ch.replace(/^<channel\b[^>]*>/, (open) => open + src);
    });
  }
  if (on.agentSecretFile) {
    out = out.replace(new RegExp(`(<entry\\b[^>]*name=(['"])${AGENT_SECRET_FWCFG}\\2[^>]*file=)(['"])[^'"]*\\3`), `$1'${xmlEscape(on.agentSecretFile)}'`);
  }
  return out;
}

export async function liveMigrate(i: MigrateInput): Promise<MigrationResult> {
  const peerUri = i.target.migrationUri ?? Virsh.connectUri(i.target);
  const xml = retarget(await i.virsh.run(i.source, ['dumpxml', i.dom, '--migratable', '--security-info']), i.on);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vdi-migrate-'));
  const file = path.join(dir, 'domain.xml');
  await fsp.writeFile(file, xml, { mode: 0o600 });
  const args = ['migrate', '--live', '--p2p', '--persistent', '--undefinesource', '--xml', file, '--persistent-xml', file];
  // sharedStorage is the operator's word that both hosts see the same pool: libvirt only
  // recognises some shared filesystems by itself (and wants cache=none), so it is told so.
  args.push(i.sharedStorage ? '--unsafe' : '--copy-storage-all');
  args.push(i.dom, peerUri);
  if (i.target.migrationAddress) args.push('--migrateuri', `tcp://${i.target.migrationAddress}`);
  const t0 = Date.now();
  const stopPolling = i.onProgress ? pollProgress(i.virsh, i.source, i.dom, i.onProgress) : async () => undefined;
  try {
    await i.virsh.run(i.source, args, { timeoutMs: i.timeoutMs, retries: 0, ...(i.signal ? { signal: i.signal } : {}) });
  } catch (e) {
    if (e instanceof LibvirtError && /snapshot/i.test(e.message)) {
      throw new LibvirtError('failed', `The desktop has snapshots, which block live migration; delete them first (${e.message}).`, i.source.name);
    }
    throw e;
  } finally {
    await stopPolling();
    await fsp.rm(dir, { recursive: true, force: true });
  }
  const result: MigrationResult = { fromHost: i.source.name, toHost: i.target.name, durationMs: Date.now() - t0 };
  try {
    const job = await i.virsh.run(i.target, ['domjobinfo', i.dom, '--completed']);
    const bytes = bytesOf(job, 'Data processed');
    if (bytes !== undefined) result.transferredBytes = bytes;
  } catch {
    // statistics are optional
  }
  return result;
}
