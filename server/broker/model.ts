// The broker's domain records and the schemas that validate them. The API validates request
// bodies with these same schemas, so a rule is written once.
import { z } from 'zod';
import type { DesktopState } from './state-machine.ts';

export const ROLES = ['user', 'helpdesk', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Identifiers: lower-case, start with a letter or digit, no markup or SQL punctuation. */
export const identifier = (max = 63) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[a-z0-9][a-z0-9._-]*$/, 'lower-case letters, digits, . _ - only, starting with a letter or digit');

/** Human text shown in the UI: letters in any script, digits, spaces and plain punctuation. */
export const displayText = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[\p{L}\p{M}\p{N} _.,:()&'/#+@!?-]*$/u, 'letters, digits, spaces and . , : ( ) & \' / # + @ ! ? - only');

export const username = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, . _ - only, starting with a letter or digit')
  .transform((s) => s.toLowerCase());

export const poolName = z
  .string()
  .min(2)
  .max(32)
  .regex(/^[a-z][a-z0-9-]*[a-z0-9]$/, 'lower-case letters, digits and -, starting with a letter');

/** `lab-{n:03}` -> prefix lab-, width 3. Names must be valid host names. */
export const namingPattern = z
  .string()
  .max(40)
  .regex(/^[a-z0-9-]*\{n(?::0?[1-9])?\}[a-z0-9-]*$/i, 'a host name with one {n} or {n:0W} counter, e.g. lab-{n:03}');

export interface NamePattern {
  prefix: string;
  width: number;
  suffix: string;
  /** Highest counter: {n:03} stops at 999 (names keep their width); {n} at 99999. */
  max: number;
}

export function parseNamePattern(pattern: string): NamePattern {
  const m = /^([a-z0-9-]*)\{n(?::0?([1-9]))?\}([a-z0-9-]*)$/i.exec(pattern);
  if (!m) throw new Error(`bad naming pattern ${pattern}`);
  const width = m[2] ? Number(m[2]) : 1;
  return { prefix: m[1]!.toLowerCase(), width, suffix: m[3]!.toLowerCase(), max: m[2] ? 10 ** width - 1 : 99_999 };
}

export const poolSizes = z
  .strictObject({
    min: z.number().int().min(0).max(10_000),
    max: z.number().int().min(0).max(10_000),
    spare: z.number().int().min(0).max(10_000),
  })
  .refine((s) => s.min <= s.max, { message: 'min must not exceed max', path: ['min'] })
  .refine((s) => s.spare <= s.max, { message: 'spare must not exceed max', path: ['spare'] });

export const desktopResources = z.strictObject({
  vcpu: z.number().int().min(1).max(64).default(1),
  memoryMiB: z.number().int().min(64).max(1_048_576).default(512),
  diskGiB: z.number().int().min(1).max(4096).default(8),
  network: identifier(32).default('default'),
  graphics: z.enum(['vga', 'virtio', 'qxl', 'cirrus', 'none']).default('vga'),
});

export const sessionPolicy = z.strictObject({
  /** Seconds without input before the session is logged off; 0 = never. */
  idleTimeoutSeconds: z.number().int().min(0).max(7 * 86400).default(0),
  /** Seconds a disconnected (or never connected) session keeps its desktop; 0 = log off at once. */
  logoffAfterDisconnectSeconds: z.number().int().min(0).max(7 * 86400).default(900),
  /** Longest a session may last; 0 = unlimited. */
  maxSessionSeconds: z.number().int().min(0).max(30 * 86400).default(0),
});

export const entitlements = z.strictObject({
  users: z.array(username).max(10_000).default([]),
  groups: z.array(identifier()).max(1_000).default([]),
  /** Only from enrolled devices at these locations (server/devices); absent or empty = from anywhere. */
  locations: z.array(identifier()).max(1_000).optional(),
});

export const fileTransfer = z.strictObject({
  /** Files may be downloaded from the redirected drive to the user's device. */
  download: z.boolean().default(true),
  /** Files may be uploaded from the user's device to the redirected drive. */
  upload: z.boolean().default(true),
});

/** Whether the tunnel records a pool's sessions: off, on, or notify (on, and the user's viewer says so). */
export const recordingPolicy = z.enum(['off', 'on', 'notify']);
export type RecordingPolicy = z.infer<typeof recordingPolicy>;

export const poolSpecSchema = z.strictObject({
  name: poolName,
  displayName: displayText(80).min(1),
  description: displayText(500).default(''),
  assignment: z.enum(['floating', 'dedicated']),
  persistence: z.enum(['persistent', 'refresh', 'delete']),
  size: poolSizes,
  naming: namingPattern,
  resources: desktopResources.prefault({}),
  image: identifier(64),
  provider: identifier(64),
  clone: z.enum(['linked', 'full']).default('linked'),
  entitlements: entitlements.prefault({}),
  sessionPolicy: sessionPolicy.prefault({}),
  /** The file share its users' folders live on (config shares.list); absent = the first share. */
  share: identifier(63).optional(),
  /** File transfer between the user's device and the redirected drive (RDP through guacd). */
  fileTransfer: fileTransfer.optional(),
  /** Helpdesk shadowing: the user sees a notice (notify, the default) or must allow it first (consent). */
  shadow: z.enum(['notify', 'consent']).optional(),
  /** Session recording by the tunnel (docs/recordings.md): on, notify (on, and the user is told); absent = off. */
  recording: recordingPolicy.optional(),
  enabled: z.boolean().default(true),
  maintenance: z.boolean().default(false),
});

export type PoolSpec = z.infer<typeof poolSpecSchema>;

/** Fields an update may change: everything but the name. */
export const poolUpdateSchema = z.strictObject({
  displayName: displayText(80).min(1).optional(),
  description: displayText(500).optional(),
  persistence: z.enum(['persistent', 'refresh', 'delete']).optional(),
  size: poolSizes.optional(),
  naming: namingPattern.optional(),
  resources: desktopResources.optional(),
  image: identifier(64).optional(),
  clone: z.enum(['linked', 'full']).optional(),
  entitlements: entitlements.optional(),
  sessionPolicy: sessionPolicy.optional(),
  share: identifier(63).optional(),
  fileTransfer: fileTransfer.optional(),
  shadow: z.enum(['notify', 'consent']).optional(),
  recording: recordingPolicy.optional(),
  enabled: z.boolean().optional(),
  maintenance: z.boolean().optional(),
});

export type PoolUpdate = z.infer<typeof poolUpdateSchema>;

export interface Pool extends PoolSpec {
  createdAt: string;
  updatedAt: string;
}

export interface Desktop {
  id: string;
  pool: string;
  name: string;
  state: DesktopState;
  provider: string;
  host: string;
  mac: string;
  /** The user who owns it (dedicated) or holds it (floating, during a session); '' = nobody. */
  user: string;
  /** The live session on it; '' = none. */
  session: string;
  image: string;
  createdAt: number;
  updatedAt: number;
  stateSince: number;
  failures: number;
  nextAttemptAt: number;
  lastError: string;
  /**
   * When its provider first reported it unreachable (its host does not answer), ms; 0 = reachable.
   * A mark, not a state: such a desktop keeps its state but is not handed out.
   */
  unreachableSince: number;
  /** A live migration running now (latest progress sample); absent otherwise. */
  migration?: DesktopMigration;
  /** Time-to-ready of its last build or refresh, ms (from the operation's start to the guest saying it is up); absent before. */
  readyMs?: number;
  /** How the guest said it is up: vdi (our agent's hello), qga (qemu-guest-agent), grace (console + the image's boot grace). */
  readyVia?: 'vdi' | 'qga' | 'grace';
  /** When it became ready, ms. */
  readyAt?: number;
}

/** What the helpdesk sees of a desktop's running live migration. */
export interface DesktopMigration {
  toHost: string;
  startedAt: number;
  /** 0..100; 0 until the hypervisor reports. */
  percent: number;
  transferredBytes: number;
  remainingBytes: number;
  /** When this sample was taken, ms. */
  updatedAt: number;
}

export const SESSION_STATES = ['starting', 'connected', 'disconnected', 'ended'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

export interface Session {
  id: string;
  user: string;
  desktop: string;
  pool: string;
  state: SessionState;
  clientAddress: string;
  createdAt: number;
  connectedAt: number;
  disconnectedAt: number;
  lastActivityAt: number;
  endedAt: number;
  endReason: string;
  /** What the tunnel carried: bytes to and from the desktop, connected time, connections made. */
  bytesIn: number;
  bytesOut: number;
  connectedMs: number;
  tunnels: number;
  /** The logon timeline: how long each phase of getting this session usable took, ms (see LOGON_PHASES). */
  logon: LogonTimeline;
  /** Idle time the guest's agent reported (seconds) and when it did (ms, 0 = never): the idle timeout prefers it. */
  guestIdleSeconds: number;
  guestIdleAt: number;
  /** The enrolled device it was requested from (server/devices); absent from a plain browser. */
  device?: { id: string; name: string };
}

/**
 * Logon phases, in the order a launch goes through them (Horizon's logon segments, Citrix
 * Director's logon duration): each is a duration in ms, absent until known.
 * - authentication: the user's login (recorded at login, carried by their HTTP session);
 * - assignment: the request until a desktop was chosen (includes checking the user's folder);
 * - desktop_ready: boot wait, 0 on a ready spare, else until the built desktop was usable;
 * - home_mapped: the guest agent mapping the user's folder (logon answer);
 * - tunnel_connected: the request answered (or the desktop ready) until the tunnel was open;
 * - first_frame: the Launch click until the browser drew the first frame (reported by the browser);
 * - guest_logon: the request until the guest's agent said the user's session is up.
 */
export const LOGON_PHASES = ['authentication', 'assignment', 'desktop_ready', 'home_mapped', 'tunnel_connected', 'first_frame', 'guest_logon'] as const;
export type LogonPhase = (typeof LOGON_PHASES)[number];
export type LogonTimeline = Partial<Record<LogonPhase, number>> & {
  /** The Launch click until the desktop was usable: first frame drawn and (with our agent) the guest logon done. */
  click_to_usable?: number;
};

export interface User {
  id: string;
  displayName: string;
  role: Role;
  groups: string[];
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
  /** The authenticator the account belongs to ("local" when absent); see docs/authentication.md. */
  source?: string;
  /** The directory's id for a directory user (LDAP DN, OIDC sub). */
  externalId?: string;
  /** When a directory user's groups were last read from the directory. */
  groupsRefreshedAt?: string;
}

export interface Group {
  name: string;
  displayName: string;
  members: string[];
  createdAt: string;
}

export interface ApiKey {
  id: string;
  name: string;
  role: Role;
  createdBy: string;
  createdAt: string;
  lastUsedAt: string;
}

/** Who is acting: a logged-in user or an API key. */
export interface Principal {
  kind: 'user' | 'apikey';
  id: string;
  role: Role;
  groups: string[];
}

export const ROLE_RANK: Record<Role, number> = { user: 0, helpdesk: 1, admin: 2 };

export function hasRole(p: Principal, role: Role): boolean {
  return ROLE_RANK[p.role] >= ROLE_RANK[role];
}

export function isEntitled(pool: Pick<PoolSpec, 'entitlements'>, p: Principal): boolean {
  if (p.kind !== 'user') return false;
  return pool.entitlements.users.includes(p.id) || p.groups.some((g) => pool.entitlements.groups.includes(g));
}

/** How an enrolled thin client behaves (server/devices, docs/devices.md). */
export const DEVICE_MODES = ['personal-kiosk', 'shared-lab', 'room-display'] as const;
export type DeviceMode = (typeof DEVICE_MODES)[number];

/** The enrolled device a request came from (its credential cookie), as entitlement checks and MFA policy see it. */
export interface DeviceContext {
  id: string;
  name: string;
  location: string;
  mode: DeviceMode;
}

/**
 * Whether a pool may be used from here: a pool restricted to locations needs an enrolled device
 * at one of them (a browser without a device, or a device elsewhere, is refused).
 */
export function locationAllows(pool: Pick<PoolSpec, 'entitlements'>, device: DeviceContext | null | undefined): boolean {
  const only = pool.entitlements.locations;
  if (!only || only.length === 0) return true;
  return !!device && only.includes(device.location);
}
