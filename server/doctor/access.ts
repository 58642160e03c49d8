// Access denied: whether the broker (and smbd acting for users) can read and write the share and
// users' folders with the right modes, whether consoles are protected by passwords, and whether
// the certificates the broker is configured with (directory CAs, libvirt TLS) are valid.
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { type CheckFamily, type CheckResult, fail, ok, skipped, warn } from './types.ts';

const DAY = 86_400_000;
export const CERT_WARN_DAYS = 30;

/** Each certificate in a PEM file. */
export function readCertificates(file: string): X509Certificate[] {
  const pem = fs.readFileSync(file, 'utf8');
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
}

export function judgeCertificate(id: string, target: string, c: X509Certificate, now: number, where: string): CheckResult {
  const to = Date.parse(c.validTo);
  const from = Date.parse(c.validFrom);
  const subject = c.subject.replace(/\n/g, ', ');
  const details = { subject, issuer: c.issuer.replace(/\n/g, ', '), validFrom: new Date(from).toISOString(), validTo: new Date(to).toISOString(), where };
  const fix = `Renew the certificate (${subject}) and replace ${where}; directory and libvirt connections refuse an expired one.`;
  if (to < now) return fail(id, target, `certificate ${subject} in ${where} expired on ${new Date(to).toISOString().slice(0, 10)}: TLS connections that rely on it are refused`, fix, details);
  if (from > now) return fail(id, target, `certificate ${subject} in ${where} is not valid before ${new Date(from).toISOString()} (a clock problem, or issued for later)`, 'Check the clock of this host and of the issuer; see the clock checks.', details);
  const days = Math.floor((to - now) / DAY);
  if (days < CERT_WARN_DAYS) return warn(id, target, `certificate ${subject} in ${where} expires in ${days} days`, fix, { ...details, days });
  return ok(id, target, `certificate ${subject} valid until ${new Date(to).toISOString().slice(0, 10)} (${days} days)`, { ...details, days });
}

function fileCerts(id: string, target: string, file: string, now: number): CheckResult[] {
  try {
    const certs = readCertificates(file);
    if (!certs.length) return [fail(id, target, `${file} holds no PEM certificate`, 'Point the setting at a PEM file (-----BEGIN CERTIFICATE-----).')];
    return certs.map((c) => judgeCertificate(id, target, c, now, file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return [fail(id, target, `cannot read ${file} (${code ?? (e as Error).message})`, code === 'EACCES' ? 'Let the broker\'s user read the file (chmod/chown).' : 'Correct the path in the configuration.')];
  }
}

/** The certificate an ldaps:// server presents (not verified: only its dates are read). */
function serverCertificate(host: string, port: number, timeoutMs: number): Promise<X509Certificate | undefined> {
  return new Promise((resolve) => {
    const s = tls.connect({ host, port, servername: /^[\d.:]+$/.test(host) ? undefined : host, rejectUnauthorized: false });
    const t = setTimeout(() => {
      s.destroy();
      resolve(undefined);
    }, timeoutMs);
    s.once('secureConnect', () => {
      clearTimeout(t);
      const raw = s.getPeerCertificate(false)?.raw;
      s.destroy();
      resolve(raw ? new X509Certificate(raw) : undefined);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(undefined);
    });
  });
}

export const accessChecks: CheckFamily = async (ctx) => {
  const out: CheckResult[] = [];
  const now = ctx.now();
  const uid = process.getuid?.() ?? -1;
  // Shares: the root writable by the broker, users' folders the broker's and private (0700).
  for (const s of ctx.config.shares.list) {
    const target = `share ${s.name}`;
    try {
      fs.accessSync(s.root, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
    } catch (e) {
      out.push(fail('access.share', target, `the broker cannot read and write the share root ${s.root} (${(e as NodeJS.ErrnoException).code})`, `Mount the share at ${s.root} and give the broker's user read/write access (for SMB/NFS mounts: the mount's uid/gid or an ACL).`, { root: s.root }));
      continue;
    }
    const bad: string[] = [];
    const open: string[] = [];
    let folders = 0;
    for (const e of fs.readdirSync(s.root, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      folders++;
      const st = fs.statSync(path.join(s.root, e.name));
      if (uid >= 0 && st.uid !== uid) {
        try {
          fs.accessSync(path.join(s.root, e.name), fs.constants.W_OK | fs.constants.X_OK);
        } catch {
          bad.push(`${e.name} (owner uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)})`);
          continue;
        }
      }
      if (st.mode & 0o077) open.push(`${e.name} (mode ${(st.mode & 0o777).toString(8)})`);
    }
    if (bad.length) out.push(fail('access.folders', target, `the broker cannot write ${bad.length} user folder(s): ${bad.slice(0, 10).join(', ')}${bad.length > 10 ? ', ...' : ''}; those users get "access denied" in their files and at logon`, `chown -R <broker user> <folder> && chmod 700 <folder> under ${s.root} (the broker and its smbd act for the users).`, { root: s.root, folders, unwritable: bad }));
    if (open.length) out.push(warn('access.folders', target, `${open.length} user folder(s) are readable by other accounts: ${open.slice(0, 10).join(', ')}`, `chmod 700 those folders under ${s.root}: a user's files are theirs only.`, { root: s.root, folders, open }));
    if (!bad.length && !open.length) out.push(ok('access.folders', target, `share root writable; ${folders} user folder(s), all the broker's and private (0700)`, { root: s.root, folders }));
  }

  // Consoles: a console without a password is open to anyone who reaches its port.
  const pools = await ctx.store.pools.list();
  const running = (await Promise.all(pools.map((p) => ctx.store.desktops.listByPool(p.name)))).flat().filter((d) => ['ready', 'in_use'].includes(d.state));
  const machines = new Map((await ctx.store.machines.list()).map((m) => [m.id, m]));
  let unprotected = 0;
  await Promise.all(running.map(async (d) => {
    const m = machines.get(d.id);
    if (m) {
      if (!m.hasPassword) {
        unprotected++;
        out.push((m.protocol === 'vnc' ? fail : warn)('access.console-password', d.name, `machine ${m.name} has no console password set: ${m.protocol === 'vnc' ? 'its VNC server must then accept anyone who reaches port ' + m.port : 'guacd will ask the user for credentials (or NLA refuses)'}`, `Set one: PATCH /machines/${m.name} {"password": "..."} (stored encrypted, handed only to the tunnel).`, { desktop: d.id, protocol: m.protocol }));
      }
      return;
    }
    const c = await ctx.consoleOf(d).catch(() => undefined);
    if (c && c.password === '') {
      unprotected++;
      out.push(fail('access.console-password', d.name, `the console of ${d.name} has no password`, 'Reset the desktop (its driver sets a fresh console password at start).', { desktop: d.id }));
    }
  }));
  if (!unprotected) out.push(ok('access.console-password', 'desktops', `every running console has a password (${running.length} checked)`));

  // Certificates the broker is configured with.
  let certs = 0;
  const jobs: Promise<void>[] = [];
  for (const a of ctx.config.auth.authenticators) {
    if (a.kind !== 'ldap') continue;
    if (a.caFile) {
      const r = fileCerts('access.cert', `${a.name} CA`, a.caFile, now);
      certs += r.length;
      out.push(...r);
    }
    for (const url of a.urls.filter((u) => u.startsWith('ldaps:'))) {
      const u = new URL(url);
      jobs.push(serverCertificate(u.hostname, Number(u.port) || 636, ctx.timeoutMs).then((c) => {
        if (!c) return;
        certs++;
        out.push(judgeCertificate('access.cert', `${a.name} ${url}`, c, now, `the certificate ${url} presents`));
      }));
    }
  }
  for (const p of ctx.config.providers) {
    if (p.kind !== 'libvirt') continue;
    for (const h of p.hosts) {
      if (!h.tlsDir) continue;
      for (const f of ['cacert.pem', 'clientcert.pem']) {
        const file = path.join(h.tlsDir, f);
        if (!fs.existsSync(file)) continue;
        const r = fileCerts('access.cert', `${p.name}/${h.name} ${f}`, file, now);
        certs += r.length;
        out.push(...r);
      }
    }
  }
  await Promise.all(jobs);
  if (!certs) out.push(skipped('access.cert', 'broker', 'no certificate configured (TLS is terminated at the reverse proxy; no directory CA file, ldaps:// server or libvirt TLS directory)'));
  return out;
};
