// What the broker-run smbd reads: its private smb.conf, and the private passwd/group files
// libnss_wrapper shows it instead of the system's (users of the share are not system accounts).
// Pure functions: nothing here touches the disk.
import path from 'node:path';
import { folderName } from '../names.ts';

/** Where the managed smbd keeps everything (one directory per share, mode 0700). */
export interface SambaPaths {
  dir: string;
  conf: string;
  passwd: string;
  group: string;
  pidDir: string;
  pidFile: string;
  logDir: string;
  privateDir: string;
}

export function sambaPaths(dir: string): SambaPaths {
  return {
    dir,
    conf: path.join(dir, 'smb.conf'),
    passwd: path.join(dir, 'passwd'),
    group: path.join(dir, 'group'),
    pidDir: path.join(dir, 'pid'),
    pidFile: path.join(dir, 'pid', 'smbd.pid'),
    logDir: path.join(dir, 'log'),
    privateDir: path.join(dir, 'private'),
  };
}

/** The directories smbd needs under its private dir (its state never lands in /var/lib/samba). */
export const SAMBA_SUBDIRS = ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc', 'log', 'links'] as const;

export interface SmbConfInput {
  paths: SambaPaths;
  /** SMB share name (the share's name in config). */
  share: string;
  address: string;
  port: number;
  /** The broker's service user: owns every folder, smbd reaches them as it. */
  serviceUser: string;
}

/** A value in smb.conf ends at the line's end; nothing the config gives may break a line. */
function confValue(v: string, what: string): string {
  if (/[\r\n\u0000]/.test(v)) throw new Error(`${what} cannot contain a line break or NUL`);
  return v;
}

export function renderSmbConf(i: SmbConfInput): string {
  const d = (sub: string) => confValue(path.join(i.paths.dir, sub), 'samba dir');
  const lines = [
    '# Written by vdi-broker at every start (docs/shares.md): edits are lost.',
    '[global]',
    `  smb ports = ${i.port}`,
    `  interfaces = ${confValue(i.address, 'address')}`,
    '  bind interfaces only = yes',
    '  disable netbios = yes',
    '  server role = standalone server',
    `  private dir = ${d('private')}`,
    `  lock directory = ${d('lock')}`,
    `  state directory = ${d('state')}`,
    `  cache directory = ${d('cache')}`,
    `  pid directory = ${d('pid')}`,
    `  ncalrpc dir = ${d('ncalrpc')}`,
    `  passdb backend = tdbsam:${d('private/passdb.tdb')}`,
    `  log file = ${d('log/log.%m')}`,
    '  max log size = 1000',
    '  logging = file',
    '  map to guest = never',
    '  restrict anonymous = 2',
    '  load printers = no',
    '  printing = bsd',
    '  printcap name = /dev/null',
    '  disable spoolss = yes',
    '  server min protocol = SMB2_10',
    '  unix password sync = no',
    '  obey pam restrictions = no',
    '  unix extensions = no',
    '  allow insecure wide links = no',
    `[${confValue(i.share, 'share name')}]`,
    // One folder per user: %U is the authenticated SMB user. Samba turns characters it deems
    // unsafe in %U into "_" ("~" of mapped names included), so the share path is a directory of
    // links the broker keeps, named as Samba spells %U, each to the user's folder in the root.
    `  path = ${d('links')}/%U`,
    '  valid users = %U',
    '  read only = no',
    '  browseable = no',
    // Folders are 0700 and owned by the broker's service user (share.service.ts): smbd reaches
    // them as that user; "valid users = %U" with the per-user path keeps users apart.
    `  force user = ${confValue(i.serviceUser, 'service user')}`,
    '  create mask = 0600',
    '  force create mode = 0600',
    '  directory mask = 0700',
    '  force directory mode = 0700',
    '  wide links = no',
    '  follow symlinks = no',
    '  hide dot files = no',
    '',
  ];
  return lines.join('\n');
}

/** A user of the private passwd file. */
export interface NssUser {
  name: string;
  uid: number;
  gid: number;
}

/** First uid handed to share users: far above any system or LDAP-mapped range. */
export const FIRST_SHARE_UID = 2_000_000;

export function renderPasswd(users: NssUser[]): string {
  return users.map((u) => `${u.name}:x:${u.uid}:${u.gid}:vdi share user:/nonexistent:/usr/sbin/nologin\n`).join('');
}

export function parsePasswd(text: string): NssUser[] {
  const out: NssUser[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!f[0] || !Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    out.push({ name: f[0], uid, gid });
  }
  return out;
}

export function renderGroup(groups: { name: string; gid: number }[]): string {
  return groups.map((g) => `${g.name}:x:${g.gid}:\n`).join('');
}

/** Longest SMB user name handed out (what folderName can produce; checked against real smbd and cifs in tests). */
export const MAX_SMB_NAME = 251;
/** Only what folderName produces: lower-case letters, digits, _ - . and a leading "~". */
const SMB_NAME = /^~?[a-z0-9][a-z0-9_.-]*$/;

/**
 * The SMB user name of a broker user: their folder's name (server/shares/names.ts), so smbd's
 * `links/%U` (see renderSmbConf) lands in their folder. Names Samba cannot take — too long once mapped, or
 * one of the private passwd file's own accounts — are refused (undefined).
 */
/** The name Samba substitutes for %U of an SMB user (its "~" becomes "_"; never a plain name). */
export function linkName(smbName: string): string {
  return smbName.replace(/^~/, '_');
}

export function smbUserName(userId: string, reserved: ReadonlySet<string>): string | undefined {
  let name: string;
  try {
    name = folderName(userId);
  } catch {
    return undefined;
  }
  if (name.length > MAX_SMB_NAME || !SMB_NAME.test(name) || reserved.has(name)) return undefined;
  return name;
}
