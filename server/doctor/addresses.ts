// IP conflicts: the addresses guests report (qemu-guest-agent through libvirt, else libvirt's
// DHCP leases) compared with each other and with the addresses of hosts, manual machines and
// this machine. Two machines on one IP lose connections at random (ARP flips between them);
// a guest on a host's or machine's address cuts that one off.
import dns from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import type { LibvirtProviderConfig } from '../config/schema.ts';
import { Virsh } from '../providers/libvirt/virsh.ts';
import { withTimeout } from './types.ts';

/** One address a guest reports. `entity` is the same for two views of one machine. */
export interface GuestAddress {
  entity: string;
  /** Who reports it, in plain words ("desktop dq-01 on kvm/h1"). */
  source: string;
  address: string;
  iface: string;
  mac?: string;
  via: 'agent' | 'lease';
}

/** An address that belongs to something that is not a guest: a host, a manual machine, the broker's machine. */
export interface KnownAddress {
  address: string;
  what: string;
}

export interface IpConflict {
  address: string;
  guests: GuestAddress[];
  known: KnownAddress[];
}

/**
 * Rows of `virsh domifaddr` (Name, MAC address, Protocol, Address). Continuation rows write "-"
 * for the name and MAC of the interface above; the prefix length is dropped.
 */
export function parseDomifaddr(text: string): { iface: string; mac?: string; address: string }[] {
  const out: { iface: string; mac?: string; address: string }[] = [];
  let iface = '';
  let mac: string | undefined;
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 4 || !/^ipv[46]$/i.test(cols[2]!)) continue;
    if (cols[0] !== '-') iface = cols[0]!;
    if (cols[1] !== '-') mac = cols[1]!.toLowerCase();
    const address = cols[3]!.split('/')[0]!.toLowerCase();
    if (net.isIP(address)) out.push({ iface, ...(mac ? { mac } : {}), address });
  }
  return out;
}

/** MACs of a domain's NICs on QEMU user networking: a private NAT per guest, where 10.0.2.15 repeats harmlessly. */
export function privateNatMacs(xml: string): Set<string> {
  const macs = new Set<string>();
  for (const m of xml.matchAll(/<interface\b([^>]*)>([\s\S]*?)<\/interface>/g)) {
    if (!/\btype=(["'])user\1/.test(m[1]!)) continue;
    const mac = /<mac\b[^>]*\baddress=(["'])([^"']+)\1/.exec(m[2]!)?.[2];
    if (mac) macs.add(mac.toLowerCase());
  }
  return macs;
}

/** Addresses that are never on a shared network: loopback, link-local, unspecified. */
export function ownOnly(address: string): boolean {
  const a = address.toLowerCase();
  if (net.isIPv4(a)) return a.startsWith('127.') || a.startsWith('169.254.') || a === '0.0.0.0';
  return a === '::1' || a === '::' || /^fe[89ab]/.test(a);
}

/** Addresses shared by two distinct guests, or by a guest and a host / machine. */
export function ipConflicts(guests: GuestAddress[], known: KnownAddress[]): IpConflict[] {
  const byAddr = new Map<string, { guests: Map<string, GuestAddress>; known: KnownAddress[] }>();
  const slot = (a: string) => {
    let s = byAddr.get(a);
    if (!s) byAddr.set(a, (s = { guests: new Map(), known: [] }));
    return s;
  };
  for (const g of guests) if (!ownOnly(g.address)) {
    const s = slot(g.address);
    if (!s.guests.has(g.entity)) s.guests.set(g.entity, g);
  }
  for (const k of known) if (!ownOnly(k.address) && byAddr.has(k.address.toLowerCase())) slot(k.address.toLowerCase()).known.push(k);
  const out: IpConflict[] = [];
  for (const [address, s] of byAddr) {
    if (s.guests.size > 1 || (s.guests.size >= 1 && s.known.length >= 1)) out.push({ address, guests: [...s.guests.values()].sort((a, b) => a.source.localeCompare(b.source) || a.entity.localeCompare(b.entity)), known: s.known });
  }
  return out.sort((a, b) => a.address.localeCompare(b.address));
}

/**
 * What the running domains of a libvirt host report: qemu-guest-agent first, else libvirt's DHCP
 * leases. (libvirt's ARP source is left out: libvirt 9.0 fails on it with "wrong nlmsg len".)
 */
export async function libvirtGuestAddresses(p: LibvirtProviderConfig, timeoutMs: number): Promise<{ addresses: GuestAddress[]; domains: number; reporting: number }> {
  const virsh = new Virsh('virsh', timeoutMs);
  const addresses: GuestAddress[] = [];
  let domains = 0;
  let reporting = 0;
  await Promise.all(p.hosts.map(async (h) => {
    let names: string[];
    try {
      names = (await virsh.run(h, ['list', '--name'], { timeoutMs, retries: 0 })).split('\n').map((x) => x.trim()).filter(Boolean);
    } catch {
      return; // unreachable hosts are reported by the reachability checks
    }
    domains += names.length;
    await Promise.all(names.map(async (dom) => {
      let xml = '';
      try {
        xml = await virsh.run(h, ['dumpxml', dom], { timeoutMs, retries: 0 });
      } catch {
        return; // gone between the list and the dump
      }
      const id = /<vdi:desktop\b[^>]*\bid=(["'])([^"']+)\1/.exec(xml)?.[2];
      const nat = privateNatMacs(xml);
      for (const via of ['agent', 'lease'] as const) {
        let rows;
        try {
          rows = parseDomifaddr(await virsh.run(h, ['domifaddr', dom, '--source', via], { timeoutMs, retries: 0 }));
        } catch {
          continue; // no agent connected (or an old libvirt): try the leases
        }
        const shared = rows.filter((r) => !(r.mac && nat.has(r.mac)) && r.iface !== 'lo');
        if (rows.length) reporting++;
        for (const r of shared) {
          addresses.push({
            entity: id ? `desktop:${id}` : `libvirt:${p.name}/${h.name}/${dom}`,
            source: `${id ? 'desktop' : 'VM (not managed by this broker)'} ${dom} on ${p.name}/${h.name}`,
            address: r.address, iface: r.iface, ...(r.mac ? { mac: r.mac } : {}), via,
          });
        }
        if (rows.length) break;
      }
    }));
  }));
  return { addresses, domains, reporting };
}

/** Addresses of the libvirt hosts (their URI's host, console and migration addresses), resolved. */
export async function hostAddresses(providers: { kind: string; name: string; hosts?: unknown }[], timeoutMs: number): Promise<KnownAddress[]> {
  const out: KnownAddress[] = [];
  const names: { name: string; what: string }[] = [];
  for (const p of providers) {
    if (p.kind !== 'libvirt') continue;
    for (const h of (p as LibvirtProviderConfig).hosts) {
      const uriHost = /^[a-z0-9+]+:\/\/(?:[^@/?]*@)?(\[[^\]]+\]|[^:/?]*)/i.exec(h.uri)?.[1]?.replace(/^\[|\]$/g, '');
      for (const n of [uriHost, h.consoleAddress, h.migrationAddress?.replace(/:\d+$/, '')]) if (n) names.push({ name: n, what: `libvirt host ${p.name}/${h.name}` });
    }
  }
  await Promise.all(names.map(async ({ name, what }) => {
    if (net.isIP(name)) return void out.push({ address: name.toLowerCase(), what });
    const found = await withTimeout(dns.lookup(name, { all: true }), timeoutMs, `resolving ${name}`).catch(() => []);
    for (const f of found) out.push({ address: f.address.toLowerCase(), what: `${what} (${name})` });
  }));
  return out;
}

/** This machine's own addresses (where the broker and its QEMU hosts run). */
export function brokerAddresses(): KnownAddress[] {
  return Object.entries(os.networkInterfaces()).flatMap(([iface, list]) => (list ?? []).filter((a) => !a.internal).map((a) => ({ address: a.address.toLowerCase(), what: `this broker's machine (${iface})` })));
}
