// Identity collisions: two machines with the same name, UUID or MAC address, across everything
// the drivers can see — the broker's desktops and manual machines, every QEMU process on this
// machine (also ones the broker did not start) and every libvirt domain on the libvirt hosts
// (also ones the broker does not manage). Two machine records on the same console address too,
// and IP addresses guests report that clash with each other or with a host's or machine's.
import dns from 'node:dns/promises';
import fs from 'node:fs';
import path from 'node:path';
import { desktopUuid, desktopsDir } from '../providers/qemu/machine.ts';
import { Virsh } from '../providers/libvirt/index.ts';
import type { LibvirtProviderConfig } from '../config/schema.ts';
import type { Machine } from '../store/index.ts';
import { type CheckFamily, type CheckResult, type DoctorContext, fail, ok, skipped, warn, withTimeout } from './types.ts';
import { type GuestAddress, type KnownAddress, brokerAddresses, hostAddresses, ipConflicts, libvirtGuestAddresses } from './addresses.ts';

/** One machine as some source sees it. `entity` is the same for two views of one machine. */
export interface SeenMachine {
  entity: string;
  source: string;
  name?: string;
  uuid?: string;
  macs: string[];
  managed: boolean;
}

const normMac = (m: string) => m.trim().toLowerCase().replace(/-/g, ':');

/** Every qemu-system process on this machine, with its name, UUID and NIC MACs from its command line. */
export function localQemuProcesses(managedRoots: string[]): SeenMachine[] {
  const out: SeenMachine[] = [];
  let pids: string[] = [];
  try {
    pids = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return out;
  }
  const roots = managedRoots.map((r) => r + path.sep);
  for (const pid of pids) {
    let args: string[];
    try {
      args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!path.basename(args[0] ?? '').startsWith('qemu-system')) continue;
    const val = (flag: string) => {
      const i = args.indexOf(flag);
      return i >= 0 ? args[i + 1] : undefined;
    };
    const rawName = val('-name');
    const name = rawName ? (/(?:^|,)guest=([^,]+)/.exec(rawName)?.[1] ?? rawName.split(',')[0]) : undefined;
    const uuid = val('-uuid')?.toLowerCase();
    const macs = [...args.join(' ').matchAll(/mac=([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5})/g)].map((m) => normMac(m[1]!));
    const pidfile = val('-pidfile');
    const root = pidfile ? roots.find((r) => pidfile.startsWith(r)) : undefined;
    const id = root ? pidfile!.slice(root.length).split(path.sep)[0] : undefined;
    out.push({ entity: id ? `desktop:${id}` : `qemu-pid:${pid}`, source: id ? `QEMU process ${pid}` : `QEMU process ${pid} (not started by this broker)`, ...(name ? { name } : {}), ...(uuid ? { uuid } : {}), macs, managed: !!id });
  }
  return out;
}

/** Every domain of a libvirt host (defined or running), with its UUID and MACs. */
async function libvirtDomains(p: LibvirtProviderConfig, timeoutMs: number): Promise<SeenMachine[]> {
  const virsh = new Virsh('virsh', timeoutMs);
  const out: SeenMachine[] = [];
  await Promise.all(p.hosts.map(async (h) => {
    let names: string[];
    try {
      names = (await virsh.run(h, ['list', '--all', '--name'], { timeoutMs, retries: 0 })).split('\n').map((x) => x.trim()).filter(Boolean);
    } catch {
      return; // unreachable hosts are reported by the reachability checks
    }
    await Promise.all(names.map(async (dom) => {
      try {
        const xml = await virsh.run(h, ['dumpxml', dom], { timeoutMs, retries: 0 });
        const id = /<vdi:desktop\b[^>]*\bid="([^"]+)"/.exec(xml)?.[1] ?? /<vdi:desktop\b[^>]*\bid='([^']+)'/.exec(xml)?.[1];
        out.push({
          entity: id ? `desktop:${id}` : `libvirt:${p.name}/${h.name}/${dom}`,
          source: `libvirt domain ${dom} on ${p.name}/${h.name}${id ? '' : ' (not managed by this broker)'}`,
          name: dom, uuid: /<uuid>([^<]+)<\/uuid>/.exec(xml)?.[1]?.toLowerCase(),
          macs: [...xml.matchAll(/<mac address=['"]([^'"]+)['"]/g)].map((m) => normMac(m[1]!)), managed: !!id,
        });
      } catch {
        // the domain went away between the list and the dump
      }
    }));
  }));
  return out;
}

/** Groups of distinct machines sharing one value. */
export function collisions(seen: SeenMachine[], key: (m: SeenMachine) => string[]): Map<string, SeenMachine[]> {
  const by = new Map<string, Map<string, SeenMachine>>();
  for (const m of seen) {
    for (const v of key(m)) {
      if (!v) continue;
      const g = by.get(v) ?? new Map<string, SeenMachine>();
      if (!g.has(m.entity)) g.set(m.entity, m);
      by.set(v, g);
    }
  }
  const out = new Map<string, SeenMachine[]>();
  for (const [v, g] of by) if (g.size > 1) out.set(v, [...g.values()]);
  return out;
}

/**
 * identity.ip: the addresses guests report (libvirt desktops and VMs: qemu-guest-agent, else
 * DHCP leases) against each other and against hosts, manual machines and this machine. QEMU
 * desktops run on user networking (a private NAT each: 10.0.2.15 repeats harmlessly) and report
 * nothing that could clash.
 */
export async function ipChecks(ctx: DoctorContext, machines: Machine[]): Promise<CheckResult[]> {
  const guests: GuestAddress[] = [];
  let domains = 0;
  let reporting = 0;
  await Promise.all(ctx.config.providers.map(async (p) => {
    if (p.kind !== 'libvirt') return;
    const r = await libvirtGuestAddresses(p, ctx.timeoutMs);
    guests.push(...r.addresses);
    domains += r.domains;
    reporting += r.reporting;
  }));
  const known: KnownAddress[] = [...brokerAddresses(), ...(await hostAddresses(ctx.config.providers, ctx.timeoutMs))];
  await Promise.all(machines.map(async (m) => {
    const found = await withTimeout(dns.lookup(m.address, { all: true }), ctx.timeoutMs, `resolving ${m.address}`).catch(() => []);
    for (const f of found) known.push({ address: f.address.toLowerCase(), what: `manual machine ${m.name} (${m.address})` });
  }));
  const details = { runningDomains: domains, reporting, addresses: guests.length };
  if (!reporting) {
    return [skipped('identity.ip', 'guests', domains
      ? `none of the ${domains} running libvirt domain(s) reports its addresses (no qemu-guest-agent answering, and no DHCP lease of a libvirt network); QEMU desktops use their own NAT each, so their 10.0.2.15 repeats harmlessly`
      : 'no guest reports its addresses: only running libvirt domains do (through qemu-guest-agent or libvirt\'s DHCP leases); QEMU desktops use their own NAT each, so their 10.0.2.15 repeats harmlessly', details)];
  }
  const out: CheckResult[] = [];
  for (const c of ipConflicts(guests, known)) {
    const who = [...c.guests.map((g) => `${g.source} (${g.iface}, ${g.via === 'agent' ? 'reported by its guest agent' : 'DHCP lease'})`), ...c.known.map((k) => k.what)];
    const hitsKnown = c.known.length > 0;
    out.push(fail('identity.ip', c.address, `IP address ${c.address} is used by ${who.length} machines: ${who.join('; ')}. ${hitsKnown ? `A guest on the address of ${c.known[0]!.what} cuts it off the network (ARP answers flip between them)` : 'Both lose connections at random (ARP answers flip between them); consoles and shares reach the wrong one'}`,
      hitsKnown ? 'Change the guest\'s address (a static address set inside the image is the usual cause: let the guest use DHCP), and keep hosts\' and machines\' addresses out of the DHCP range.' : 'Give each guest its own address: remove static addresses baked into the golden image (use DHCP), or make the DHCP range of the desktops\' network larger than the number of desktops; an unmanaged VM copied from a desktop keeps its address.',
      { address: c.address, machines: who, guests: c.guests.map((g) => ({ entity: g.entity, iface: g.iface, mac: g.mac ?? null, via: g.via })), known: c.known.map((k) => k.what) }));
  }
  if (!out.length) out.push(ok('identity.ip', 'guests', `no IP address used twice among ${guests.length} address(es) that ${reporting} guest(s) report, nor on a host or machine`, details));
  return out;
}

export const identityChecks: CheckFamily = async (ctx) => {
  // Guests' addresses are asked for while the names, UUIDs and MACs are gathered.
  const machinesRead = ctx.store.machines.list();
  const ipAsked = machinesRead.then((m) => ipChecks(ctx, m));
  ipAsked.catch(() => undefined);
  const seen: SeenMachine[] = [];
  const pools = await ctx.store.pools.list();
  const desktops = (await Promise.all(pools.map((p) => ctx.store.desktops.listByPool(p.name)))).flat().filter((d) => d.state !== 'deleted');
  const kindOf = new Map(ctx.config.providers.map((p) => [p.name, p.kind]));
  for (const d of desktops) {
    seen.push({ entity: `desktop:${d.id}`, source: `desktop ${d.name} (${d.id}) in pool ${d.pool}`, name: d.name, ...(kindOf.get(d.provider) === 'qemu' ? { uuid: desktopUuid(d.id) } : {}), macs: d.mac ? [normMac(d.mac)] : [], managed: true });
  }
  const roots = ctx.config.providers.flatMap((p) => (p.kind === 'qemu' ? p.hosts.map((h) => desktopsDir(h.dataDir)) : []));
  seen.push(...localQemuProcesses(roots));
  for (const p of ctx.config.providers) if (p.kind === 'libvirt') seen.push(...(await libvirtDomains(p, ctx.timeoutMs)));

  const out: CheckResult[] = [];
  const list = (ms: SeenMachine[]) => ms.map((m) => m.source).join('; ');
  const sources = { desktops: desktops.length, machinesSeen: seen.length, unmanaged: seen.filter((m) => !m.managed).length };
  const macs = collisions(seen, (m) => m.macs);
  for (const [mac, ms] of macs) {
    out.push(fail('identity.mac', mac, `MAC address ${mac} is used by ${ms.length} machines: ${list(ms)}. On one network segment the switch sends each one's traffic to the other: both lose connections at random`,
      'Give each machine its own MAC: change the unmanaged VM\'s NIC (or remove the duplicate), and keep machines outside the broker off its MAC range (desktops.macPrefix).', { mac, machines: ms.map((m) => m.source) }));
  }
  const uuids = collisions(seen, (m) => (m.uuid ? [m.uuid] : []));
  for (const [uuid, ms] of uuids) {
    out.push(fail('identity.uuid', uuid, `UUID ${uuid} belongs to ${ms.length} machines: ${list(ms)}. Licensing, management agents and Windows activation treat them as one machine`, 'Give the copied VM a new UUID (virsh edit / QEMU -uuid) and, for Windows, sysprep it.', { uuid, machines: ms.map((m) => m.source) }));
  }
  const names = collisions(seen, (m) => (m.name ? [m.name.toLowerCase()] : []));
  for (const [name, ms] of names) {
    out.push(warn('identity.name', name, `name ${name} is used by ${ms.length} machines: ${list(ms)}. Two computers with one name clash in DNS and in the directory (the second one's domain join breaks the first's)`, 'Rename one of them; the broker keeps its own names unique, so rename the machine outside the broker or change the pool\'s naming pattern.', { name, machines: ms.map((m) => m.source) }));
  }
  // Manual machines: two records on one console address are one machine brokered twice.
  const machines = await machinesRead;
  const byAddr = new Map<string, string[]>();
  for (const m of machines) byAddr.set(`${m.address.toLowerCase()}:${m.port}`, [...(byAddr.get(`${m.address.toLowerCase()}:${m.port}`) ?? []), m.name]);
  for (const [addr, names2] of byAddr) {
    if (names2.length > 1) out.push(warn('identity.address', addr, `machines ${names2.join(', ')} all point at ${addr}: two users would be handed the same computer`, 'Correct the address of the machine that moved, or remove the duplicate record (DELETE /machines/:name).', { address: addr, machines: names2 }));
  }
  if (!macs.size) out.push(ok('identity.mac', 'all machines', `no MAC address used twice among ${seen.length} machines seen`, sources));
  if (!uuids.size) out.push(ok('identity.uuid', 'all machines', 'no UUID used twice', sources));
  if (!names.size) out.push(ok('identity.name', 'all machines', 'no name used twice', sources));
  out.push(...(await ipAsked));
  return out;
};
