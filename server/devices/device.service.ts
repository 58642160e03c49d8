// Enrolled thin-client devices: enrolment codes (admin), enrolment (a kiosk browser trades a
// code for a device credential), the credential check on every request (with rotation), and
// the helpdesk's list, rename, move and revoke. Every change is audited. Secrets (codes and
// credentials) leave this service only once, to the one who gets them, and are stored hashed.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { BrokerError } from '../errors.ts';
import type { DevicesRepository, SessionsRepository, StoredDevice, StoredEnrolmentCode, UsersRepository } from '../store/index.ts';
import type { Actor, AuditService, DeviceContext, DeviceMode, Principal } from '../broker/index.ts';

export interface DevicesConfig {
  requireEnrolledKiosk: boolean;
  cookieName: string;
  rotateAfterSeconds: number;
  graceSeconds: number;
  locations: { name: string; defaultPool?: string | undefined }[];
}

export interface NewEnrolmentCode {
  location: string;
  mode: DeviceMode;
  name?: string | undefined;
  displayPool?: string | undefined;
  idleSeconds?: number | undefined;
  uses: number;
  expiresInSeconds: number;
}

export interface DeviceChanges {
  name?: string | undefined;
  location?: string | undefined;
  mode?: DeviceMode | undefined;
  displayPool?: string | undefined;
  idleSeconds?: number | undefined;
}

/** What a credential check found. */
export type CredentialCheck =
  | { kind: 'device'; device: StoredDevice; context: DeviceContext; rotated?: string }
  | { kind: 'revoked'; device: StoredDevice }
  | { kind: 'unknown' };

// Crockford base32 without I L O U: easy to read off a sheet and type on a kiosk keyboard.
const CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const CODE_LENGTH = 16; // 80 bits

/** SHA-256, base64url: codes and credentials are 80+ bits of randomness, so a plain hash is enough. */
export function secretHash(secret: string): string {
  return createHash('sha256').update(`vdi-broker device\0${secret}`).digest('base64url');
}

/** A new enrolment code, shown as XXXX-XXXX-XXXX-XXXX. */
export function newEnrolmentCode(): string {
  const bytes = randomBytes(CODE_LENGTH);
  let out = '';
  for (let i = 0; i < CODE_LENGTH; i++) {
    out += CODE_ALPHABET[bytes[i]! & 31];
    if (i % 4 === 3 && i < CODE_LENGTH - 1) out += '-';
  }
  return out;
}

/** What people type: any case, with or without dashes and spaces; I/L → 1, O → 0. Null if it cannot be a code. */
export function normaliseEnrolmentCode(input: string): string | null {
  const s = input.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
  if (s.length !== CODE_LENGTH || ![...s].every((c) => CODE_ALPHABET.includes(c))) return null;
  return s.match(/.{4}/g)!.join('-');
}

/** A device credential: 256 random bits. */
export function newCredential(): string {
  return randomBytes(32).toString('base64url');
}

export const deviceView = (d: StoredDevice) => ({
  id: d.id, name: d.name, location: d.location, mode: d.mode, state: d.state,
  displayPool: d.displayPool || null, idleSeconds: d.idleSeconds, createdAt: d.createdAt,
  lastSeenAt: d.lastSeenAt, lastSeenAddress: d.lastSeenAddress, user: d.user || null,
  revokedAt: d.revokedAt || null, revokedBy: d.revokedBy || null, enrolledWith: d.enrolledWith,
});
export type DeviceView = ReturnType<typeof deviceView>;

export const codeView = (c: StoredEnrolmentCode) => ({
  id: c.id, location: c.location, mode: c.mode, name: c.name || null, displayPool: c.displayPool || null,
  idleSeconds: c.idleSeconds, uses: c.uses, usesLeft: c.usesLeft, expiresAt: c.expiresAt, createdAt: c.createdAt, createdBy: c.createdBy,
});

/** The group every room display's user is in (pools entitle it, or one display's user). */
export const ROOM_DISPLAYS = 'room-displays';
export const displayUserOf = (deviceId: string) => `device.${deviceId}`;

const contextOf = (d: StoredDevice): DeviceContext => ({ id: d.id, name: d.name, location: d.location, mode: d.mode });
const target = (id: string) => ({ type: 'device', id });

export class DeviceService {
  constructor(
    private readonly repo: DevicesRepository,
    private readonly sessions: SessionsRepository,
    private readonly audit: AuditService,
    readonly config: DevicesConfig,
    private readonly now: () => number = Date.now,
    private readonly users?: UsersRepository,
  ) {}

  /**
   * The principal a room display logs in as: the user `device.<id>` in the group
   * `room-displays` (made at its first start), with no password (an empty hash never verifies,
   * so nobody logs in as it by password). Pools show on a display only if they entitle that
   * user or group: the device's own entitlement.
   */
  async displayPrincipal(actor: Actor, device: DeviceContext): Promise<{ principal: Principal; pool: string }> {
    if (device.mode !== 'room-display') throw new BrokerError('conflict', 'This device is not a room display.');
    const d = await this.repo.get(device.id);
    if (!d?.displayPool || !this.users) throw new BrokerError('conflict', 'This room display has no pool to show; ask the helpdesk.');
    const id = displayUserOf(d.id);
    let u = await this.users.get(id);
    if (!u) {
      if (await this.users.missingGroups([ROOM_DISPLAYS]).then((m) => m.length > 0)) await this.users.createGroup({ name: ROOM_DISPLAYS, displayName: 'Room displays', members: [] });
      if (await this.users.create({ id, displayName: `Room display ${d.name}`.slice(0, 80), role: 'user', passwordHash: '', groups: [ROOM_DISPLAYS] })) {
        await this.audit.record(actor, 'user.create', { type: 'user', id }, { source: 'device', device: d.id, groups: [ROOM_DISPLAYS] });
      }
      u = await this.users.get(id);
    }
    if (!u || u.disabled || u.passwordHash) throw new BrokerError('forbidden', 'This room display cannot log in (its user is disabled or is a person\'s account).');
    return { principal: { kind: 'user', id, role: 'user', groups: u.groups }, pool: d.displayPool };
  }

  /** The pool a location names as its default, if any. */
  defaultPoolOf(location: string): string | null {
    return this.config.locations.find((l) => l.name === location)?.defaultPool ?? null;
  }

  async createCode(actor: Actor, o: NewEnrolmentCode): Promise<{ code: string; enrolment: ReturnType<typeof codeView> }> {
    if (o.mode === 'room-display' && !o.displayPool) throw new BrokerError('validation_failed', 'displayPool: a room display needs the pool it shows.', { field: 'displayPool' });
    const code = newEnrolmentCode();
    const now = this.now();
    const stored: StoredEnrolmentCode = {
      id: randomUUID(), location: o.location, mode: o.mode, name: o.name ?? '', displayPool: o.displayPool ?? '',
      idleSeconds: o.idleSeconds ?? (o.mode === 'shared-lab' ? 300 : 0), uses: o.uses, usesLeft: o.uses,
      expiresAt: now + o.expiresInSeconds * 1000, createdAt: now, createdBy: actor.principal?.id ?? '',
    };
    await this.repo.createCode(secretHash(code), stored);
    await this.audit.record(actor, 'device.enrolmentcode.create', { type: 'enrolmentcode', id: stored.id }, { location: o.location, mode: o.mode, uses: o.uses, expiresAt: new Date(stored.expiresAt).toISOString() });
    return { code, enrolment: codeView(stored) };
  }

  async listCodes() {
    return (await this.repo.listCodes(this.now())).map(codeView);
  }

  async deleteCode(actor: Actor, id: string): Promise<void> {
    if (!(await this.repo.deleteCode(id))) throw new BrokerError('not_found', 'No live enrolment code with that id.');
    await this.audit.record(actor, 'device.enrolmentcode.delete', { type: 'enrolmentcode', id });
  }

  /** Trades a code for a new device; answers the device and its credential (for the cookie only). */
  async enrol(actor: Actor, input: string, name?: string): Promise<{ device: StoredDevice; credential: string }> {
    const code = normaliseEnrolmentCode(input);
    const credential = newCredential();
    const r = code ? await this.repo.enrol(secretHash(code), { deviceId: randomUUID(), credentialHash: secretHash(credential), address: actor.address, name: name ?? '', now: this.now() }) : { ok: false as const };
    if (!r.ok) {
      await this.audit.record(actor, 'device.enroll', target(''), { code: 'enrolment_code_invalid' }, 'denied');
      throw new BrokerError('enrolment_code_invalid', undefined, { field: 'code' });
    }
    const device = (await this.repo.get(r.deviceId))!;
    await this.audit.record(actor, 'device.enroll', target(device.id), { name: device.name, location: device.location, mode: device.mode, enrolmentCode: r.codeId, usesLeft: r.usesLeft });
    return { device, credential };
  }

  /**
   * The device behind a credential cookie. The current credential is rotated when it is older
   * than devices.rotateAfterSeconds (the new one is in `rotated`, for the cookie); the previous
   * one keeps working for devices.graceSeconds.
   */
  async check(credential: string): Promise<CredentialCheck> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(credential)) return { kind: 'unknown' };
    const hash = secretHash(credential);
    const found = await this.repo.byCredential(hash);
    if (!found) return { kind: 'unknown' };
    if (found.device.state === 'revoked') return { kind: 'revoked', device: found.device };
    const out: CredentialCheck = { kind: 'device', device: found.device, context: contextOf(found.device) };
    const now = this.now();
    if (found.current && now - found.rotatedAt >= this.config.rotateAfterSeconds * 1000) {
      const next = newCredential();
      if (await this.repo.rotate(found.device.id, hash, secretHash(next), { now, rotateAfterMs: this.config.rotateAfterSeconds * 1000, graceMs: this.config.graceSeconds * 1000 })) out.rotated = next;
    }
    return out;
  }

  /** Last seen (time, address) and who is logged in on it; written at most every few seconds unless something changed. */
  async seen(d: StoredDevice, address: string, user: string): Promise<void> {
    const now = this.now();
    if (now - d.lastSeenAt < 5000 && d.lastSeenAddress === address && d.user === user) return;
    await this.repo.update(d.id, { lastSeenAt: now, lastSeenAddress: address, user });
  }

  /** A refused credential (forged, garbage, long expired, or a revoked device's): audited once per address and minute. */
  async refused(actor: Actor, why: 'device_unknown' | 'device_revoked', device?: StoredDevice): Promise<void> {
    if (!(await this.repo.firstRefusalThisMinute(actor.address))) return;
    await this.audit.record(actor, 'device.credential.refuse', target(device?.id ?? ''), { code: why }, 'denied');
  }

  async list(f: { location?: string | undefined; state?: 'active' | 'revoked' | undefined }): Promise<DeviceView[]> {
    return (await this.repo.list()).filter((d) => (!f.location || d.location === f.location) && (!f.state || d.state === f.state)).map(deviceView);
  }

  async get(id: string): Promise<DeviceView> {
    const d = await this.repo.get(id);
    if (!d) throw new BrokerError('not_found', 'No such device.');
    return deviceView(d);
  }

  async update(actor: Actor, id: string, c: DeviceChanges): Promise<DeviceView> {
    const before = await this.repo.get(id);
    if (!before) throw new BrokerError('not_found', 'No such device.');
    const mode = c.mode ?? before.mode;
    const displayPool = c.displayPool ?? before.displayPool;
    if (mode === 'room-display' && !displayPool) throw new BrokerError('validation_failed', 'displayPool: a room display needs the pool it shows.', { field: 'displayPool' });
    const d = (await this.repo.update(id, { ...c, updatedAt: this.now() }))!;
    const changed: Record<string, unknown> = {};
    for (const k of Object.keys(c) as (keyof DeviceChanges)[]) if (c[k] !== undefined && c[k] !== before[k]) changed[k] = { from: before[k], to: c[k] };
    await this.audit.record(actor, 'device.update', target(id), changed);
    return deviceView(d);
  }

  async revoke(actor: Actor, id: string): Promise<DeviceView> {
    const before = await this.repo.get(id);
    if (!before) throw new BrokerError('not_found', 'No such device.');
    if (before.state === 'revoked') throw new BrokerError('conflict', 'The device is revoked already.');
    // Nobody is logged in on it any more: its next request is refused.
    const d = (await this.repo.update(id, { state: 'revoked', revokedAt: this.now(), revokedBy: actor.principal?.id ?? '', user: '', updatedAt: this.now() }))!;
    await this.audit.record(actor, 'device.revoke', target(id), { name: d.name, location: d.location, user: before.user });
    return deviceView(d);
  }

  /** Notes on a session which device it was requested from (the helpdesk's session list shows it). */
  async recordSession(sessionId: string, device: DeviceContext): Promise<void> {
    await this.sessions.recordDevice(sessionId, device.id, device.name);
  }
}
