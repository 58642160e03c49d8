// Reachability and firewalls, from the broker: every running desktop's console, the shares'
// smbd, Redis, the directories (LDAP) and an external guacd. Refused (nothing listens / REJECT),
// filtered (no answer: DROP or down) and unreachable (no route) are told apart.
import { smbNegotiate } from '../shares/index.ts';
import { type CheckFamily, type CheckResult, fail, ok, skipped } from './types.ts';
import { describePort, portFix, probePort } from './probe.ts';

async function probeOne(id: string, target: string, what: string, service: string, host: string, port: number, timeoutMs: number, extra: Record<string, unknown> = {}): Promise<CheckResult> {
  const p = await probePort(host, port, timeoutMs);
  const details = { host, port, state: p.state, ms: p.ms, ...(p.code ? { code: p.code } : {}), ...extra };
  if (p.state === 'open') return ok(id, target, describePort(what, host, port, p, timeoutMs), details);
  return fail(id, target, describePort(what, host, port, p, timeoutMs), portFix(p, service, port), details);
}

function hostPort(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) || defaultPort };
}

export const reachabilityChecks: CheckFamily = async (ctx) => {
  const t = ctx.timeoutMs;
  const jobs: Promise<CheckResult | CheckResult[]>[] = [];
  const r = hostPort(ctx.config.redis.url, 6379);
  jobs.push(probeOne('reach.redis', `${r.host}:${r.port}`, 'Redis', 'Redis', r.host, r.port, t));

  const pools = await ctx.store.pools.list();
  // Desktops that should be running, and every machine of a manual pool (one that does not
  // answer is quarantined: its probe says why — refused, filtered or unreachable).
  const machineIds = new Set((await ctx.store.machines.list()).map((m) => m.id));
  const running = (await Promise.all(pools.map((p) => ctx.store.desktops.listByPool(p.name)))).flat()
    .filter((d) => ['ready', 'in_use'].includes(d.state) || (machineIds.has(d.id) && d.state !== 'deleted'));
  for (const d of running) {
    jobs.push((async () => {
      const c = await ctx.consoleOf(d).catch((e: Error) => e);
      if (c instanceof Error) return fail('reach.console', d.name, `the console of ${d.name} is unknown: ${c.message}`, 'Check that the desktop runs (GET /desktops/:id, power) and reset it if its process is gone.', { desktop: d.id });
      if (!c) return skipped('reach.console', d.name, 'this driver does not tell the console address without side effects', { desktop: d.id });
      const svc = `the ${c.protocol.toUpperCase()} console of ${d.name}`;
      return probeOne('reach.console', d.name, `${c.protocol.toUpperCase()} console`, svc, c.host, c.port, t, { desktop: d.id, protocol: c.protocol });
    })());
  }
  if (!running.length) jobs.push(Promise.resolve(skipped('reach.console', 'desktops', 'no running desktop')));

  // The shares' smbd (guests mount users' folders from it).
  for (const s of ctx.config.shares.list) {
    if (!s.smb) continue;
    const smb = s.smb;
    jobs.push((async () => {
      const res = await probeOne('reach.share', `${s.name} (smbd ${smb.address}:${smb.port})`, `smbd of share ${s.name}`, `smbd of share ${s.name}${smb.managed ? ' (managed by the broker: restart the broker, or see its log for why smbd stopped)' : ''}`, smb.address, smb.port, t, { share: s.name, managed: smb.managed });
      if (res.status !== 'ok') return res;
      try {
        const dialect = await smbNegotiate(smb.address, smb.port, t);
        return ok('reach.share', res.target, `smbd of share ${s.name} answers SMB (dialect 0x${dialect.toString(16)})`, { ...res.details, dialect });
      } catch (e) {
        return fail('reach.share', res.target, `port ${smb.port} is open but does not answer SMB: ${(e as Error).message}`, `Check that smbd (not another program) listens on ${smb.address}:${smb.port} and is not hung.`, res.details);
      }
    })());
  }

  // Directories.
  for (const a of ctx.config.auth.authenticators) {
    if (a.kind !== 'ldap') continue;
    for (const url of a.urls) {
      const { host, port } = hostPort(url, url.startsWith('ldaps:') ? 636 : 389);
      jobs.push(probeOne('reach.ldap', `${a.name} ${url}`, `directory ${a.name}`, `the directory server ${host}`, host, port, t, { authenticator: a.name }));
    }
  }

  // guacd: external, or the built-in gateway in this process.
  if (ctx.config.guacd.host) {
    jobs.push(probeOne('reach.guacd', `${ctx.config.guacd.host}:${ctx.config.guacd.port}`, 'guacd', 'guacd', ctx.config.guacd.host, ctx.config.guacd.port, t));
    jobs.push(Promise.resolve(skipped('reach.from-guacd', ctx.config.guacd.host, 'guacd runs on a separate host: the console checks above were made from the broker; guacd needs the same ports open from its own host (run `nc -zv <console> <port>` there)')));
  }
  return (await Promise.all(jobs)).flat();
};
