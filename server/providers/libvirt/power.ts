import type { Logger } from 'pino';
import { sleep, vncHello } from '../qemu/machine.ts';
import type { LibvirtHostConfig } from './config.ts';
import { parseDisplay } from './domain-xml.ts';
import { domainInfo } from './inventory.ts';
import { LibvirtError, type Virsh } from './virsh.ts';

// Powering a domain on (resolves once its console answers RFB) and off (ACPI, then destroy
// after the timeout).

export interface Located {
  host: LibvirtHostConfig;
  uuid: string;
}

export interface PowerOnOptions {
  timeoutMs: number;
  log: Logger;
  /** Reads the console's RFB banner (default: a TCP connection from this machine). */
  banner?: (host: LibvirtHostConfig, address: string, port: number) => Promise<string>;
}

export async function powerOn(virsh: Virsh, loc: Located, o: PowerOnOptions): Promise<void> {
  const t0 = Date.now();
  if ((await domainInfo(virsh, loc.host, loc.uuid)).power === 'paused') await virsh.run(loc.host, ['resume', loc.uuid]);
  await virsh.run(loc.host, ['start', loc.uuid], { retries: 0 }).catch((e) => {
    if (!/already active/i.test((e as Error).message)) throw e;
  });
  const deadline = t0 + o.timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const display = parseDisplay(await virsh.run(loc.host, ['domdisplay', loc.uuid, '--type', 'vnc']));
      if (display) {
        const banner = o.banner
          ? await o.banner(loc.host, loc.host.consoleAddress, display.port)
          : (await vncHello(loc.host.consoleAddress, display.port, 2000)).version;
        if (banner === 'RFB 003.008') {
          o.log.info({ desktop: loc.uuid, host: loc.host.name, port: display.port, ms: Date.now() - t0 }, 'desktop started');
          return;
        }
      }
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new LibvirtError('timeout', `The console of the desktop on host ${loc.host.name} did not answer within ${o.timeoutMs} ms: ${String(last)}`, loc.host.name);
}

export async function powerOff(virsh: Virsh, loc: Located, timeoutMs: number, log: Logger): Promise<void> {
  if ((await domainInfo(virsh, loc.host, loc.uuid)).power === 'stopped') return;
  try {
    await virsh.run(loc.host, ['shutdown', loc.uuid, '--mode', 'acpi']);
  } catch (e) {
    log.warn({ host: loc.host.name, err: (e as Error).message }, 'ACPI power-off request failed');
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await domainInfo(virsh, loc.host, loc.uuid)).power === 'stopped') return;
    await sleep(250);
  }
  log.warn({ host: loc.host.name, timeoutMs }, 'guest did not power off in time; destroying it');
  await virsh.run(loc.host, ['destroy', loc.uuid]).catch((e) => {
    if (!/not running/i.test((e as Error).message)) throw e;
  });
}
