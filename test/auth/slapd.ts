// A private OpenLDAP server for tests (TESTING.md, "Directory and identity providers"): its
// cn=config built with slapadd -n0 and its tree with slapadd -n1 in a temp dir, StartTLS with a
// CA made here by openssl, on a free loopback port; stopped by its pid.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/redis.ts';

export const SUFFIX = 'dc=example,dc=test';
export const ROOT_DN = `cn=admin,${SUFFIX}`;
export const ROOT_PW = 'root-secret-pw';
export const SERVICE_DN = `cn=broker,ou=services,${SUFFIX}`;
export const SERVICE_PW = 'service-secret-pw';

export interface Slapd {
  dir: string;
  port: number;
  url: string;
  /** The same server over LDAPS (TLS from the first byte). */
  ldapsUrl: string;
  caFile: string;
  /** A CA that did not sign the server's certificate. */
  otherCaFile: string;
  pid: number | null;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** ldapmodify as the root DN. */
  modify(ldif: string): void;
  close(): Promise<void>;
}

function makeCa(dir: string): void {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=vdi test LDAP CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf']);
  // A CA that signed nothing here: trusting it instead must fail the TLS handshake.
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other-ca.key', '-out', 'other-ca.pem', '-days', '2', '-subj', '/CN=unrelated CA']);
}

function configLdif(dir: string): string {
  return `dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: ${dir}/slapd.pid
olcTLSCACertificateFile: ${dir}/ca.pem
olcTLSCertificateFile: ${dir}/server.pem
olcTLSCertificateKeyFile: ${dir}/server.key

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/nis.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: ${SUFFIX}
olcRootDN: ${ROOT_DN}
olcRootPW: ${ROOT_PW}
olcDbDirectory: ${dir}/db
olcDbMaxSize: 104857600
olcAccess: {0}to attrs=userPassword by self =xw by anonymous auth by * none
olcAccess: {1}to * by dn.exact="${SERVICE_DN}" read by self read by * none

dn: olcOverlay={0}ppolicy,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {0}ppolicy
olcPPolicyDefault: cn=default,ou=policies,${SUFFIX}
olcPPolicyUseLockout: TRUE
`;
}

const person = (uid: string, name: string, password: string, extra = '') => `dn: uid=${uid},ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: ${uid}
cn: ${name}
sn: ${name.split(' ').at(-1)}
displayName: ${name}
mail: ${uid}@example.test
userPassword: ${password}
${extra}`;

/** The test tree: users (one locked, one that must change its password), nested and cyclic groups, a posixGroup. */
export function treeLdif(passwords: Record<string, string>): string {
  const p = (u: string) => passwords[u] ?? passwords.default!;
  return [
    `dn: ${SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n`,
    ...['people', 'groups', 'services', 'policies'].map((ou) => `dn: ou=${ou},${SUFFIX}\nobjectClass: organizationalUnit\nou: ${ou}\n`),
    `dn: ${SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: broker\nuserPassword: ${SERVICE_PW}\n`,
    `dn: cn=default,ou=policies,${SUFFIX}\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\ncn: default\npwdAttribute: userPassword\npwdMustChange: TRUE\npwdLockout: TRUE\npwdMaxFailure: 1000\n`,
    `dn: cn=expiring,ou=policies,${SUFFIX}\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\ncn: expiring\npwdAttribute: userPassword\npwdMaxAge: 60\npwdGraceAuthNLimit: 0\n`,
    person('alice', 'Alice Lab', p('alice')),
    person('bob', 'Bob Admin', p('bob')),
    person('carol', 'Carol Gone', p('carol'), 'pwdAccountLockedTime: 000001010000Z\n'),
    person('dave', 'Dave Reset', p('dave'), 'pwdReset: TRUE\n'),
    person('erin', 'Erin Ward', p('erin')),
    person('frank', 'Frank Failover', p('frank')),
    person('gina', 'Gina Secure', p('gina')),
    person('ivy', 'Ivy Leaver', p('ivy'), 'description: left\n'),
    // Under a policy whose passwords last a minute, changed long ago: only ppolicy can say "expired".
    person('hank', 'Hank Expired', p('hank'), `pwdPolicySubentry: cn=expiring,ou=policies,${SUFFIX}\npwdChangedTime: 20200101000000Z\n`),
    person('admin', 'Directory Admin Impostor', p('admin')),
    `dn: cn=lab-staff,ou=groups,${SUFFIX}\nobjectClass: groupOfNames\ncn: lab-staff\nmember: cn=nobody,${SUFFIX}\nmember: uid=alice,ou=people,${SUFFIX}\n`,
    `dn: cn=VDI Users,ou=groups,${SUFFIX}\nobjectClass: groupOfNames\ncn: VDI Users\nmember: cn=lab-staff,ou=groups,${SUFFIX}\n`,
    `dn: cn=vdi-admins,ou=groups,${SUFFIX}\nobjectClass: groupOfNames\ncn: vdi-admins\nmember: uid=bob,ou=people,${SUFFIX}\n`,
    `dn: cn=cycle-a,ou=groups,${SUFFIX}\nobjectClass: groupOfNames\ncn: cycle-a\nmember: cn=cycle-b,ou=groups,${SUFFIX}\nmember: uid=bob,ou=people,${SUFFIX}\n`,
    `dn: cn=cycle-b,ou=groups,${SUFFIX}\nobjectClass: groupOfNames\ncn: cycle-b\nmember: cn=cycle-a,ou=groups,${SUFFIX}\n`,
    `dn: cn=nurses,ou=groups,${SUFFIX}\nobjectClass: posixGroup\ncn: nurses\ngidNumber: 5001\nmemberUid: erin\n`,
  ].join('\n');
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export async function startSlapd(tree: string): Promise<Slapd> {
  const dir = mkdtempSync(join(tmpdir(), 'vdi-slapd-'));
  mkdirSync(join(dir, 'slapd.d'));
  mkdirSync(join(dir, 'db'));
  makeCa(dir);
  writeFileSync(join(dir, 'config.ldif'), configLdif(dir));
  writeFileSync(join(dir, 'tree.ldif'), tree);
  execFileSync('slapadd', ['-n0', '-F', join(dir, 'slapd.d'), '-l', join(dir, 'config.ldif')], { stdio: 'pipe' });
  execFileSync('slapadd', ['-n1', '-F', join(dir, 'slapd.d'), '-l', join(dir, 'tree.ldif')], { stdio: 'pipe' });
  const port = await freePort();
  const ldapsPort = await freePort();
  const s: Slapd = {
    dir, port, url: `ldap://127.0.0.1:${port}`, ldapsUrl: `ldaps://127.0.0.1:${ldapsPort}`, caFile: join(dir, 'ca.pem'), otherCaFile: join(dir, 'other-ca.pem'), pid: null,
    async start() {
      // slapd forks into the background and writes its pid file; -d 0 keeps it in the foreground
      // instead, so this process owns it and its pid is the child's.
      const child = spawn('slapd', ['-d', '0', '-h', `${s.url}/ ${s.ldapsUrl}/`, '-F', join(dir, 'slapd.d')], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
      s.pid = child.pid ?? null;
      const deadline = Date.now() + 20_000;
      while (!(await canConnect(port)) || !(await canConnect(ldapsPort))) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`slapd did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      const pid = s.pid;
      if (!pid) return;
      s.pid = null;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return;
      }
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        try {
          process.kill(pid, 0);
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    },
    modify(ldif: string) {
      try {
        execFileSync('ldapmodify', ['-x', '-H', s.url, '-D', ROOT_DN, '-w', ROOT_PW], { input: ldif, stdio: ['pipe', 'pipe', 'pipe'] });
      } catch (err) {
        throw new Error(`ldapmodify failed: ${String((err as { stderr?: unknown }).stderr)}`);
      }
    },
    async close() {
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await s.start();
  return s;
}

export const readCa = (s: Slapd) => readFileSync(s.caFile, 'utf8');
