// Clocks: every replica publishes how far its clock is from Redis's (TIME), so the doctor sees
// the skew between replicas; the doctor also measures its own process against Redis, says that
// QEMU hosts (and libvirt hosts on this machine) share this machine's clock, measures qemu+ssh
// libvirt hosts over the driver's ssh transport, and reads guests' clocks through qemu-guest-agent.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Store } from '../store/index.ts';
import { GRANT_TTL_MS } from '../gateway/grant.ts';
import { TOTP_PERIOD_SECONDS } from '../auth/mfa/totp.ts';
import { Virsh } from '../providers/libvirt/virsh.ts';
import { type CheckFamily, type CheckResult, type DoctorContext, fail, ok, skipped, warn, withTimeout } from './types.ts';
import { hostRoute, sshDialogue } from './host-shell.ts';

/** A replica's clock against Redis: offsetMs = replica - Redis (positive: the replica is ahead). */
export interface ReplicaClock {
  replica: string;
  host: string;
  pid: number;
  offsetMs: number;
  rttMs: number;
  /** Redis time of the sample, ms. */
  at: number;
}

/** Thresholds (docs/doctor.md). */
export const CLOCK = {
  /** Between replicas and Redis: above this, warn. */
  replicaWarnMs: 1000,
  /**
   * Above this, fail: gateway grants (GRANT_TTL_MS, 15 s) are issued by one replica and checked
   * by another's gateway; a third of their life lost to skew refuses or stretches them.
   */
  replicaFailMs: Math.round(GRANT_TTL_MS / 3),
  /** Guests: above this, warn (logs, file times, session idle reports out of order). */
  guestWarnMs: 5000,
  /** Guests: above this, fail — Kerberos (Active Directory logon, SMB) refuses more than 5 minutes. */
  guestFailMs: 300_000,
  /** The broker against Redis beyond a TOTP step: authenticator codes are refused. */
  totpMs: TOTP_PERIOD_SECONDS * 1000,
  /**
   * Hypervisor hosts: above this, warn (guests boot with the host's clock as their RTC; logs and
   * audit trails of host and broker stop lining up).
   */
  hostWarnMs: 1000,
  /** Hypervisor hosts: above this, fail — guests booted there start beyond Kerberos's 5 minutes. */
  hostFailMs: 300_000,
  /** Samples older than this (Redis time) are from replicas that stopped. */
  staleMs: 60_000,
};

/** Measures this process's clock against Redis TIME (round-trip mid-point). */
export async function measureRedisOffset(store: Store): Promise<{ offsetMs: number; rttMs: number; redisMs: number }> {
  const t0 = Date.now();
  const [s, us] = await store.redis.time();
  const t1 = Date.now();
  const redisMs = Number(s) * 1000 + Math.floor(Number(us) / 1000);
  return { offsetMs: Math.round((t0 + t1) / 2 - redisMs), rttMs: t1 - t0, redisMs };
}

/** Publishes this replica's clock offset every `intervalMs` (each replica, no lease). */
export class ClockPublisher {
  readonly replica = randomUUID();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly store: Store, private readonly intervalMs = 10_000) {}

  start(): void {
    if (this.timer) return;
    const tick = () => void this.publish().catch(() => undefined);
    tick();
    this.timer = setInterval(tick, this.intervalMs);
    this.timer.unref();
  }

  async publish(): Promise<ReplicaClock> {
    const m = await measureRedisOffset(this.store);
    const c: ReplicaClock = { replica: this.replica, host: hostname(), pid: process.pid, offsetMs: m.offsetMs, rttMs: m.rttMs, at: m.redisMs };
    await this.store.redis.hset(this.store.keys.replicaClocks, this.replica, JSON.stringify(c));
    return c;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.store.redis.hdel(this.store.keys.replicaClocks, this.replica).catch(() => undefined);
  }
}

/** Live replicas' clocks; stale entries (a replica that died) are removed. */
export async function replicaClocks(store: Store, redisNow: number): Promise<ReplicaClock[]> {
  const all = await store.redis.hgetall(store.keys.replicaClocks);
  const out: ReplicaClock[] = [];
  for (const [field, raw] of Object.entries(all)) {
    try {
      const c = JSON.parse(raw) as ReplicaClock;
      if (redisNow - c.at > CLOCK.staleMs) await store.redis.hdel(store.keys.replicaClocks, field);
      else out.push(c);
    } catch {
      await store.redis.hdel(store.keys.replicaClocks, field);
    }
  }
  return out;
}

/**
 * A host's clock over ssh, NTP-style: the remote shell says it is ready, we send a line and note
 * when; it prints its time (ns) the moment the line arrives. offsetMs = host - this process at
 * the mid-point of that one round trip (the ssh handshake does not count), so the error is at
 * most rttMs / 2.
 */
export const HOST_CLOCK_COMMAND = 'echo vdi-doctor-ready; read line; date +%s%N';

/** Parses `date +%s%N` (ns), or plain seconds where %N is not supported (a literal N, or 10 digits). */
export function parseHostDate(line: string): { ms: number; resolutionMs: number } | undefined {
  const t = line.trim();
  if (/^\d{16,20}$/.test(t)) return { ms: Math.round(Number(BigInt(t) / 1000n) / 1000), resolutionMs: 1 };
  const secs = /^(\d{9,11})N?$/.exec(t);
  if (secs) return { ms: Number(secs[1]) * 1000 + 500, resolutionMs: 500 };
  return undefined;
}

/** The offset of a clock from one round trip: sent at t0, answered at t1 with `remoteMs`. */
export function roundTripOffset(t0: number, t1: number, remoteMs: number): { offsetMs: number; rttMs: number } {
  return { offsetMs: Math.round(remoteMs - (t0 + t1) / 2), rttMs: t1 - t0 };
}

export async function measureSshHostClock(virsh: Virsh, h: Parameters<Virsh['sshCommand']>[0], timeoutMs: number): Promise<{ offsetMs: number; rttMs: number; resolutionMs: number }> {
  let t0 = 0;
  let t1 = 0;
  let answer: string | undefined;
  // Lines before the marker (a login script's chatter) are passed over.
  await sshDialogue(virsh, h, HOST_CLOCK_COMMAND, timeoutMs, (line) => {
    if (!t0 && line.trim() === 'vdi-doctor-ready') {
      t0 = Date.now();
      return '\n';
    }
    if (t0 && answer === undefined) {
      t1 = Date.now();
      answer = line;
    }
    return undefined;
  });
  const parsed = answer !== undefined ? parseHostDate(answer) : undefined;
  if (!t0 || !t1 || !parsed) throw new Error(t0 ? `the host printed no time we understand (${JSON.stringify((answer ?? '').slice(0, 60))}; \`date +%s%N\` should print nanoseconds)` : 'the host\'s shell did not start the time exchange');
  return { ...roundTripOffset(t0, t1, parsed.ms), resolutionMs: parsed.resolutionMs };
}

/** clock.host for every libvirt host: measured over ssh, this machine's clock, or not reachable. */
async function libvirtHostClocks(ctx: DoctorContext, brokerVsRedisMs: number): Promise<CheckResult[]> {
  const virsh = new Virsh('virsh', ctx.timeoutMs);
  const out: CheckResult[] = [];
  const fixNtp = 'Run NTP on the host (chrony or systemd-timesyncd) against the same servers as the brokers and Redis, then check `chronyc tracking` there.';
  const jobs = ctx.config.providers.flatMap((p) => (p.kind === 'libvirt' ? p.hosts.map((h) => ({ p, h })) : []));
  await Promise.all(jobs.map(async ({ p, h }) => {
    const target = `${p.name}/${h.name}`;
    const route = hostRoute(h.uri);
    if (route === 'local') {
      out.push(ok('clock.host', target, `libvirt host on this machine (${h.uri.split('?')[0]}): it has the broker's own clock, so it is not measured separately (see clock.redis)`, { sameMachine: true, measured: false, via: 'local' }));
      return;
    }
    if (route === 'none') {
      out.push(skipped('clock.host', target, `libvirt's ${/^[a-z0-9]+\+([a-z0-9]+)/i.exec(h.uri)?.[1] ?? 'remote'} connection (${h.uri.split('?')[0]}) carries no host time and runs no commands there, so this host's clock cannot be measured from the broker; its guests' clocks are checked through their agents. Check NTP on the host (\`chronyc tracking\`), or use a qemu+ssh URI to let the doctor measure it`, { sameMachine: false, measured: false, via: 'none' }));
      return;
    }
    try {
      const m = await measureSshHostClock(virsh, h, ctx.timeoutMs);
      // host - Redis = (host - broker) + (broker - Redis): one scale with the replicas.
      const offset = m.offsetMs + brokerVsRedisMs;
      const a = Math.abs(offset);
      const dir = offset > 0 ? 'ahead of' : 'behind';
      const details = { offsetMs: offset, offsetFromBrokerMs: m.offsetMs, rttMs: m.rttMs, resolutionMs: m.resolutionMs, sameMachine: false, measured: true, via: 'ssh', warnMs: CLOCK.hostWarnMs, failMs: CLOCK.hostFailMs };
      if (a > CLOCK.hostFailMs) out.push(fail('clock.host', target, `host clock is ${s(a)} ${dir} Redis (measured over ssh): guests booted there start with that clock, beyond Kerberos's 5 minutes, so domain logon and SMB to users' folders fail until their own time sync corrects them; TLS certificates may look expired or not yet valid`, fixNtp, details));
      else if (a > CLOCK.hostWarnMs) out.push(warn('clock.host', target, `host clock is ${s(a)} ${dir} Redis (measured over ssh; warn above ${s(CLOCK.hostWarnMs)}, fail above 5 min): guests booted there start off by as much, and host logs do not line up with the broker's`, fixNtp, details));
      else out.push(ok('clock.host', target, `host clock within ${Math.max(a, 1)} ms of Redis (measured over ssh, ±${Math.ceil(m.rttMs / 2) + (m.resolutionMs > 1 ? m.resolutionMs : 0)} ms)`, details));
    } catch (e) {
      out.push(warn('clock.host', target, `could not read the host's clock over ssh: ${(e as Error).message}`, 'Check that the broker reaches the host over ssh with the same key libvirt uses (reach and kvm checks name connection faults), and that `date` runs there.', { measured: false, via: 'ssh' }));
    }
  }));
  return out;
}

const s = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 0)} s`;

export const clockChecks: CheckFamily = async (ctx) => {
  const out: CheckResult[] = [];
  const self = await measureRedisOffset(ctx.store);
  const selfAbs = Math.abs(self.offsetMs);
  const breaks = `gateway grants live ${GRANT_TTL_MS / 1000} s and authenticator codes ${TOTP_PERIOD_SECONDS} s steps`;
  const fixNtp = 'Run NTP on every broker, Redis and hypervisor host (chrony or systemd-timesyncd) against the same servers, then check `chronyc tracking`.';
  const judge = (id: string, target: string, offset: number, what: string, details: Record<string, unknown>) => {
    const a = Math.abs(offset);
    if (a > CLOCK.replicaFailMs) out.push(fail(id, target, `${what} is ${s(a)} ${offset > 0 ? 'ahead of' : 'behind'} Redis: connection grants issued by one replica and checked by another fail or outlive their ${GRANT_TTL_MS / 1000} s${a > CLOCK.totpMs ? `, and authenticator (TOTP) codes are refused (more than one ${TOTP_PERIOD_SECONDS}-s step)` : ''}`, fixNtp, details));
    else if (a > CLOCK.replicaWarnMs) out.push(warn(id, target, `${what} is ${s(a)} off Redis (warn above ${s(CLOCK.replicaWarnMs)}, fail above ${s(CLOCK.replicaFailMs)}: ${breaks})`, fixNtp, details));
    else out.push(ok(id, target, `${what} is within ${Math.max(a, 1)} ms of Redis`, details));
  };
  judge('clock.redis', 'broker', self.offsetMs, 'this broker process\'s clock', { offsetMs: self.offsetMs, rttMs: self.rttMs, warnMs: CLOCK.replicaWarnMs, failMs: CLOCK.replicaFailMs });

  const replicas = await replicaClocks(ctx.store, self.redisMs);
  if (!replicas.length) out.push(skipped('clock.replica', 'replicas', 'no broker replica has published its clock (none running, or all older than this version)'));
  for (const r of replicas) judge('clock.replica', `${r.host}:${r.pid}`, r.offsetMs, `replica ${r.host} (pid ${r.pid})`, { replica: r.replica, offsetMs: r.offsetMs, rttMs: r.rttMs, sampledAt: new Date(r.at).toISOString() });
  if (replicas.length > 1) {
    const spread = Math.max(...replicas.map((r) => r.offsetMs)) - Math.min(...replicas.map((r) => r.offsetMs));
    if (spread > CLOCK.replicaFailMs) out.push(fail('clock.replicas', 'replicas', `the replicas' clocks are ${s(spread)} apart: ${breaks}`, fixNtp, { spreadMs: spread, replicas: replicas.length }));
    else if (spread > CLOCK.replicaWarnMs) out.push(warn('clock.replicas', 'replicas', `the replicas' clocks are ${s(spread)} apart`, fixNtp, { spreadMs: spread, replicas: replicas.length }));
    else out.push(ok('clock.replicas', 'replicas', `${replicas.length} replicas within ${spread} ms of each other`, { spreadMs: spread, replicas: replicas.length }));
  }

  for (const p of ctx.config.providers) {
    if (p.kind === 'qemu') for (const h of p.hosts) out.push(ok('clock.host', `${p.name}/${h.name}`, 'QEMU host on this machine: same clock as the broker', { sameMachine: true }));
  }
  out.push(...(await libvirtHostClocks(ctx, self.offsetMs)));

  // Guests: through qemu-guest-agent (guest-get-time); our own agent's protocol carries no time.
  if (!ctx.guests) {
    out.push(skipped('clock.guest', 'desktops', 'guest clocks are read through the running broker (GET /api/v1/doctor); the command line does not hold the agents\' connections'));
    return out;
  }
  const pools = await ctx.store.pools.list();
  const running = (await Promise.all(pools.map((p) => ctx.store.desktops.listByPool(p.name)))).flat().filter((d) => ['ready', 'in_use'].includes(d.state));
  let asked = 0;
  await Promise.all(running.map(async (d) => {
    const t = await withTimeout(ctx.guests!.guestTime(d.id, ctx.timeoutMs), ctx.timeoutMs + 500, 'guest-get-time').catch(() => undefined);
    if (!t) return;
    asked++;
    const off = t.ms - t.at;
    const a = Math.abs(off);
    const det = { desktop: d.id, offsetMs: off, via: t.via, warnMs: CLOCK.guestWarnMs, failMs: CLOCK.guestFailMs };
    const dir = off > 0 ? 'ahead of' : 'behind';
    const fixGuest = 'Start time sync in the guest (Windows: w32time with the domain hierarchy; Linux: chrony/timesyncd), or set the guest clock from the host at boot (QEMU -rtc base=utc, Windows RealTimeIsUniversal for Linux-built images).';
    if (a > CLOCK.guestFailMs) out.push(fail('clock.guest', d.name, `guest clock is ${s(a)} ${dir} the host: Kerberos refuses more than 5 min, so domain logon and SMB to the user's folder fail; TOTP in the guest breaks beyond ${TOTP_PERIOD_SECONDS} s`, fixGuest, det));
    else if (a > CLOCK.guestWarnMs) out.push(warn('clock.guest', d.name, `guest clock is ${s(a)} ${dir} the host (warn above ${s(CLOCK.guestWarnMs)}, fail above 5 min: Kerberos)`, fixGuest, det));
    else out.push(ok('clock.guest', d.name, `guest clock within ${Math.max(a, 1)} ms of the host`, det));
  }));
  if (!asked) out.push(skipped('clock.guest', 'desktops', `no running desktop answered a time request (${running.length} running; only qemu-guest-agent reports guest time)`));
  return out;
};
