// Enrolled thin-client devices and their enrolment codes (server/devices). Codes and device
// credentials are high-entropy random secrets, kept here only as SHA-256 hashes; consuming a
// code and rotating a credential are each one Lua script, so two kiosks racing for the last
// use of a code, or two parallel requests of one kiosk, can never both win. Keys:
// docs/redis-keys.md.
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import type { DeviceMode } from '../broker/model.ts';

export type DeviceState = 'active' | 'revoked';

export interface StoredDevice {
  id: string;
  name: string;
  location: string;
  mode: DeviceMode;
  state: DeviceState;
  /** Room displays: the pool launched automatically. */
  displayPool: string;
  /** Shared lab terminals: seconds without input before the kiosk logs the user off (0 = never). */
  idleSeconds: number;
  createdAt: number;
  /** The enrolment code (its id) and the admin who made it. */
  enrolledWith: string;
  codeCreatedBy: string;
  lastSeenAt: number;
  lastSeenAddress: string;
  /** Who is logged in on it now ('' = nobody), as its last request said. */
  user: string;
  revokedAt: number;
  revokedBy: string;
  updatedAt: number;
}

export interface StoredEnrolmentCode {
  id: string;
  location: string;
  mode: DeviceMode;
  name: string;
  displayPool: string;
  idleSeconds: number;
  uses: number;
  usesLeft: number;
  expiresAt: number;
  createdAt: number;
  createdBy: string;
}

export type EnrolResult = { ok: true; deviceId: string; codeId: string; usesLeft: number } | { ok: false };

// Takes one use of a code (gone when used up or expired) and creates the device with its first
// credential, atomically. KEYS: code, devices set, device, credential. ARGV: now, device id,
// credential hash, address, requested name.
const ENROL = `
local raw = redis.call('HGETALL', KEYS[1])
if #raw == 0 then return {'err'} end
local f = {}
for i = 1, #raw, 2 do f[raw[i]] = raw[i + 1] end
local now = tonumber(ARGV[1])
if tonumber(f.expiresAt) <= now then redis.call('DEL', KEYS[1]); return {'err'} end
local left = redis.call('HINCRBY', KEYS[1], 'usesLeft', -1)
if left < 0 then redis.call('DEL', KEYS[1]); return {'err'} end
if left == 0 then redis.call('DEL', KEYS[1]) end
local name = ARGV[5]
if name == '' then
  name = f.name
  if name == '' then name = f.location .. '-' .. string.sub(ARGV[2], 1, 8) end
  if tonumber(f.uses) > 1 then name = name .. '-' .. tostring(tonumber(f.uses) - left) end
end
redis.call('HSET', KEYS[3], 'id', ARGV[2], 'name', name, 'location', f.location, 'mode', f.mode,
  'displayPool', f.displayPool or '', 'idleSeconds', f.idleSeconds or '0', 'state', 'active',
  'createdAt', ARGV[1], 'updatedAt', ARGV[1], 'enrolledWith', f.id, 'codeCreatedBy', f.createdBy or '',
  'cred', ARGV[3], 'rotatedAt', ARGV[1], 'lastSeenAt', ARGV[1], 'lastSeenAddress', ARGV[4], 'user', '')
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SET', KEYS[4], ARGV[2])
return {'ok', f.id, tostring(left)}`;

// Replaces the device's credential if the one presented is the current one and it is older than
// the rotation interval; the presented one stays valid for the grace period (parallel requests
// that still carry it). KEYS: device, old credential, new credential. ARGV: old hash, new hash,
// now, rotate-after ms, grace ms, device id.
const ROTATE = `
if redis.call('HGET', KEYS[1], 'state') ~= 'active' then return 0 end
if redis.call('HGET', KEYS[1], 'cred') ~= ARGV[1] then return 0 end
local rotated = tonumber(redis.call('HGET', KEYS[1], 'rotatedAt') or '0')
if tonumber(ARGV[3]) - rotated < tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'cred', ARGV[2], 'rotatedAt', ARGV[3], 'prevCred', ARGV[1])
redis.call('SET', KEYS[3], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1`;

type Scripted = Redis & {
  vdiDeviceEnrol(k1: string, k2: string, k3: string, k4: string, ...args: (string | number)[]): Promise<string[]>;
  vdiDeviceRotate(k1: string, k2: string, k3: string, ...args: (string | number)[]): Promise<number>;
};

const num = (v: string | undefined) => (v ? Number(v) || 0 : 0);

function toDevice(h: Record<string, string>): StoredDevice | null {
  if (!h.id) return null;
  return {
    id: h.id,
    name: h.name ?? '',
    location: h.location ?? '',
    mode: (h.mode ?? 'personal-kiosk') as DeviceMode,
    state: h.state === 'revoked' ? 'revoked' : 'active',
    displayPool: h.displayPool ?? '',
    idleSeconds: num(h.idleSeconds),
    createdAt: num(h.createdAt),
    enrolledWith: h.enrolledWith ?? '',
    codeCreatedBy: h.codeCreatedBy ?? '',
    lastSeenAt: num(h.lastSeenAt),
    lastSeenAddress: h.lastSeenAddress ?? '',
    user: h.user ?? '',
    revokedAt: num(h.revokedAt),
    revokedBy: h.revokedBy ?? '',
    updatedAt: num(h.updatedAt),
  };
}

function toCode(h: Record<string, string>): StoredEnrolmentCode | null {
  if (!h.id) return null;
  return {
    id: h.id,
    location: h.location ?? '',
    mode: (h.mode ?? 'personal-kiosk') as DeviceMode,
    name: h.name ?? '',
    displayPool: h.displayPool ?? '',
    idleSeconds: num(h.idleSeconds),
    uses: num(h.uses),
    usesLeft: num(h.usesLeft),
    expiresAt: num(h.expiresAt),
    createdAt: num(h.createdAt),
    createdBy: h.createdBy ?? '',
  };
}

const ID = /^[A-Za-z0-9-]{1,64}$/;
const HASH = /^[A-Za-z0-9_-]{43}$/;

export class DevicesRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace) {
    if (!('vdiDeviceEnrol' in redis)) redis.defineCommand('vdiDeviceEnrol', { numberOfKeys: 4, lua: ENROL });
    if (!('vdiDeviceRotate' in redis)) redis.defineCommand('vdiDeviceRotate', { numberOfKeys: 3, lua: ROTATE });
  }

  private get scripted(): Scripted {
    return this.redis as Scripted;
  }

  async createCode(hash: string, c: StoredEnrolmentCode): Promise<void> {
    const fields: Record<string, string | number> = { ...c };
    await this.redis
      .multi()
      .hset(this.k.enrolCode(hash), fields)
      .pexpireat(this.k.enrolCode(hash), c.expiresAt)
      .set(this.k.enrolCodeById(c.id), hash, 'PXAT', c.expiresAt)
      .zadd(this.k.enrolCodes, c.expiresAt, c.id)
      .exec();
  }

  /** Codes not expired and not used up, soonest expiry first. */
  async listCodes(now: number): Promise<StoredEnrolmentCode[]> {
    await this.redis.zremrangebyscore(this.k.enrolCodes, '-inf', now);
    const ids = await this.redis.zrange(this.k.enrolCodes, 0, 999);
    const out: StoredEnrolmentCode[] = [];
    for (const id of ids) {
      const hash = await this.redis.get(this.k.enrolCodeById(id));
      const c = hash ? toCode(await this.redis.hgetall(this.k.enrolCode(hash))) : null;
      if (c) out.push(c);
      else await this.redis.zrem(this.k.enrolCodes, id);
    }
    return out;
  }

  /** Withdraws a code before its expiry; false when there is no such live code. */
  async deleteCode(id: string): Promise<boolean> {
    if (!ID.test(id)) return false;
    const hash = await this.redis.get(this.k.enrolCodeById(id));
    await this.redis.zrem(this.k.enrolCodes, id);
    if (!hash) return false;
    const [, [, n]] = (await this.redis.multi().del(this.k.enrolCodeById(id)).del(this.k.enrolCode(hash)).exec()) as [[null, number], [null, number]];
    return n === 1;
  }

  async enrol(codeHash: string, o: { deviceId: string; credentialHash: string; address: string; name: string; now: number }): Promise<EnrolResult> {
    if (!HASH.test(codeHash)) return { ok: false };
    const r = await this.scripted.vdiDeviceEnrol(
      this.k.enrolCode(codeHash), this.k.devices, this.k.device(o.deviceId), this.k.deviceCredential(o.credentialHash),
      o.now, o.deviceId, o.credentialHash, o.address, o.name,
    );
    if (r[0] !== 'ok') return { ok: false };
    const left = Number(r[2]);
    if (left === 0) await this.redis.multi().del(this.k.enrolCodeById(r[1]!)).zrem(this.k.enrolCodes, r[1]!).exec();
    return { ok: true, deviceId: o.deviceId, codeId: r[1]!, usesLeft: left };
  }

  /** The device a credential (its hash) belongs to, and whether it is the device's current one. */
  async byCredential(hash: string): Promise<{ device: StoredDevice; current: boolean; rotatedAt: number } | null> {
    if (!HASH.test(hash)) return null;
    const id = await this.redis.get(this.k.deviceCredential(hash));
    if (!id) return null;
    const h = await this.redis.hgetall(this.k.device(id));
    const device = toDevice(h);
    return device ? { device, current: h.cred === hash, rotatedAt: num(h.rotatedAt) } : null;
  }

  /** True when this call rotated the credential (the caller then sends the new one). */
  async rotate(id: string, oldHash: string, newHash: string, o: { now: number; rotateAfterMs: number; graceMs: number }): Promise<boolean> {
    return (await this.scripted.vdiDeviceRotate(this.k.device(id), this.k.deviceCredential(oldHash), this.k.deviceCredential(newHash), oldHash, newHash, o.now, o.rotateAfterMs, o.graceMs, id)) === 1;
  }

  async get(id: string): Promise<StoredDevice | null> {
    if (!ID.test(id)) return null;
    return toDevice(await this.redis.hgetall(this.k.device(id)));
  }

  async list(): Promise<StoredDevice[]> {
    const ids = (await this.redis.smembers(this.k.devices)).sort();
    const out: StoredDevice[] = [];
    for (const id of ids) {
      const d = await this.get(id);
      if (d) out.push(d);
    }
    return out;
  }

  /** Changes fields of an existing device; null when there is none. */
  async update(id: string, fields: Partial<Pick<StoredDevice, 'name' | 'location' | 'mode' | 'displayPool' | 'idleSeconds' | 'state' | 'revokedAt' | 'revokedBy' | 'lastSeenAt' | 'lastSeenAddress' | 'user' | 'updatedAt'>>): Promise<StoredDevice | null> {
    if (!ID.test(id) || !(await this.redis.exists(this.k.device(id)))) return null;
    const flat: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) flat[k] = v;
    if (Object.keys(flat).length) await this.redis.hset(this.k.device(id), flat);
    return this.get(id);
  }

  /** One audit entry per address and minute for refused device cookies (the trail is capped). */
  async firstRefusalThisMinute(address: string): Promise<boolean> {
    return (await this.redis.set(this.k.deviceRefusals(address.slice(0, 64) || 'unknown'), '1', 'EX', 60, 'NX')) === 'OK';
  }
}
