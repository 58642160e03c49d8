// Backup and restore of everything a broker keeps in Redis (docs/backup.md).
//
// Snapshot: one Lua script lists every key under the prefix (SCAN inside the script) and DUMPs
// each with its type and remaining TTL, together with Redis's clock. A script runs atomically,
// so the snapshot is consistent across keys (no assignment half-written, no session without its
// desktop) without stopping the brokers; Redis is blocked while it runs (about 1 ms per
// thousand small keys; see docs/backup.md for large audit streams).
//
// File: JSON lines. A header {format, version, brokerVersion, prefix, createdAt, redisVersion,
// keys}, then one {key, type, expireAt, value} per key (key without the prefix; expireAt =
// absolute expiry in ms or 0; value = base64 of Redis's DUMP payload), then a trailer {end,
// keys, sha256} over the entry lines, so a truncated file is refused. The file holds secrets
// (password hashes, sealed TOTP secrets, the session and tunnel secrets): it is written 0600.
//
// Left out: runtime coordination that a restored broker must not inherit — reconciler leases
// and heartbeats, replica clocks, and single-use connection tickets (restoring one would let it
// be used twice).
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export const BACKUP_FORMAT = 'vdi-broker-backup';
export const BACKUP_VERSION = 1;

export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: number;
  brokerVersion: string;
  prefix: string;
  createdAt: string;
  redisVersion: string;
  keys: number;
}

export interface BackupEntry {
  key: string;
  type: string;
  /** Absolute expiry (ms since the epoch, Redis clock) or 0 for none. */
  expireAt: number;
  /** base64 of the DUMP payload. */
  value: string;
}

/** Keys (relative to the prefix) that are runtime coordination, not state. */
export function excludedFromBackup(rel: string): boolean {
  return rel.startsWith('lease:') || (rel.startsWith('job:') && rel.endsWith(':heartbeat')) || rel === 'replicas:clock' || rel.startsWith('ticket:');
}

const SNAPSHOT_LUA = `
local pattern = ARGV[1]
local t = redis.call('TIME')
local out = { t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)) }
local cursor = '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    local ty = redis.call('TYPE', k)['ok']
    local ttl = redis.call('PTTL', k)
    local v = redis.call('DUMP', k)
    if v then
      out[#out + 1] = k
      out[#out + 1] = ty
      out[#out + 1] = tostring(ttl)
      out[#out + 1] = v
    end
  end
until cursor == '0'
return out
`;

/** Glob-escapes a prefix for SCAN MATCH. */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

async function redisVersion(redis: Redis): Promise<string> {
  const info = await redis.info('server');
  return /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown';
}

/** Takes a consistent snapshot of every key under `prefix`. */
export async function snapshot(redis: Redis, prefix: string, brokerVersion: string): Promise<{ header: BackupHeader; entries: BackupEntry[] }> {
  // evalBuffer (replies as Buffers: DUMP payloads are binary) exists at run time but not in the
  // typings; callBuffer loses the command name under auto-pipelining.
  const evalBuffer = (redis as unknown as { evalBuffer(script: string, keys: number, ...args: string[]): Promise<Buffer[]> }).evalBuffer.bind(redis);
  const raw = await evalBuffer(SNAPSHOT_LUA, 0, `${globEscape(prefix)}*`);
  const now = Number(raw[0]!.toString());
  const entries: BackupEntry[] = [];
  for (let i = 1; i + 3 < raw.length; i += 4) {
    const key = raw[i]!.toString('utf8');
    const rel = key.slice(prefix.length);
    if (excludedFromBackup(rel)) continue;
    const ttl = Number(raw[i + 2]!.toString());
    entries.push({ key: rel, type: raw[i + 1]!.toString(), expireAt: ttl > 0 ? now + ttl : 0, value: raw[i + 3]!.toString('base64') });
  }
  entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const header: BackupHeader = { format: BACKUP_FORMAT, version: BACKUP_VERSION, brokerVersion, prefix, createdAt: new Date(now).toISOString(), redisVersion: await redisVersion(redis), keys: entries.length };
  return { header, entries };
}

export interface BackupSummary {
  file: string;
  keys: number;
  bytes: number;
  byType: Record<string, number>;
  prefix: string;
  createdAt: string;
}

function typeCounts(entries: { type: string }[]): Record<string, number> {
  const byType: Record<string, number> = {};
  for (const e of entries) byType[e.type] = (byType[e.type] ?? 0) + 1;
  return byType;
}

/** Writes a backup of the broker's keys to `file` (0600, written aside and renamed into place). */
export async function writeBackup(redis: Redis, prefix: string, brokerVersion: string, file: string): Promise<BackupSummary> {
  const { header, entries } = await snapshot(redis, prefix, brokerVersion);
  const hash = createHash('sha256');
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(header)}\n`);
    for (const e of entries) {
      const line = `${JSON.stringify(e)}\n`;
      hash.update(line);
      fs.writeSync(fd, line);
    }
    fs.writeSync(fd, `${JSON.stringify({ end: true, keys: entries.length, sha256: hash.digest('hex') })}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  return { file, keys: entries.length, bytes: fs.statSync(file).size, byType: typeCounts(entries), prefix, createdAt: header.createdAt };
}

export class BackupError extends Error {}

/** Reads and checks a backup file: format, version, completeness and checksum. */
export function readBackup(file: string): { header: BackupHeader; entries: BackupEntry[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new BackupError(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const lines = text.split('\n').filter(Boolean);
  let header: BackupHeader;
  try {
    header = JSON.parse(lines[0] ?? '') as BackupHeader;
  } catch {
    throw new BackupError(`${file} is not a vdi-broker backup (no header line)`);
  }
  if (header.format !== BACKUP_FORMAT) throw new BackupError(`${file} is not a vdi-broker backup`);
  if (header.version !== BACKUP_VERSION) throw new BackupError(`${file} is backup format version ${header.version}; this broker reads version ${BACKUP_VERSION}`);
  const trailer = JSON.parse(lines[lines.length - 1] ?? '{}') as { end?: boolean; keys?: number; sha256?: string };
  if (!trailer.end) throw new BackupError(`${file} is incomplete (no end line): the backup was interrupted`);
  const body = lines.slice(1, -1);
  const hash = createHash('sha256');
  for (const l of body) hash.update(`${l}\n`);
  if (body.length !== trailer.keys || hash.digest('hex') !== trailer.sha256) throw new BackupError(`${file} is damaged (its checksum does not match its entries)`);
  return { header, entries: body.map((l) => JSON.parse(l) as BackupEntry) };
}

export interface RestoreSummary {
  keys: number;
  expired: number;
  byType: Record<string, number>;
  prefix: string;
  from: { prefix: string; createdAt: string; brokerVersion: string };
  replacedExisting: number;
}

/**
 * Loads a backup into Redis under `prefix`. The Redis must be empty (DBSIZE 0) unless `force`,
 * which first deletes every key under `prefix` (other keys are left alone) and then restores.
 * Keys whose expiry passed since the backup are skipped.
 */
export async function restoreBackup(redis: Redis, file: string, prefix: string, o: { force?: boolean } = {}): Promise<RestoreSummary> {
  const { header, entries } = readBackup(file);
  const size = await redis.dbsize();
  let replaced = 0;
  if (size > 0) {
    if (!o.force) throw new BackupError(`the target Redis is not empty (${size} keys in this database): restore loads into an empty Redis only. Point redis.url at an empty one, or pass --force to delete the keys under "${prefix}" and replace them`);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${globEscape(prefix)}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) replaced += await redis.del(...keys);
    } while (cursor !== '0');
  }
  const [s, us] = await redis.time();
  const now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
  let expired = 0;
  const live = entries.filter((e) => {
    if (e.expireAt && e.expireAt <= now + 1) {
      expired++;
      return false;
    }
    return true;
  });
  for (let i = 0; i < live.length; i += 500) {
    const batch = live.slice(i, i + 500);
    const m = redis.multi();
    for (const e of batch) {
      const args: (string | number | Buffer)[] = [prefix + e.key, e.expireAt ? e.expireAt : 0, Buffer.from(e.value, 'base64')];
      if (e.expireAt) args.push('ABSTTL');
      if (o.force) args.push('REPLACE');
      m.call('RESTORE', ...args);
    }
    const res = await m.exec();
    const bad = res?.find(([err]) => err);
    if (bad) {
      const msg = (bad[0] as Error).message;
      throw new BackupError(/payload version/i.test(msg) ? `this Redis cannot read the backup's DUMP payloads (made by Redis ${header.redisVersion}): restore into the same or a newer Redis` : `RESTORE failed: ${msg}`);
    }
  }
  return { keys: live.length, expired, byType: typeCounts(live), prefix, from: { prefix: header.prefix, createdAt: header.createdAt, brokerVersion: header.brokerVersion }, replacedExisting: replaced };
}
