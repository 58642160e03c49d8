// Shapes of the broker's /api/v1 answers the client reads (docs/openapi.json).
export type Role = 'user' | 'helpdesk' | 'admin';
export type DesktopState = 'provisioning' | 'ready' | 'assigned' | 'in_use' | 'refreshing' | 'deleting' | 'deleted' | 'error';
export const DESKTOP_STATES: DesktopState[] = ['provisioning', 'ready', 'assigned', 'in_use', 'refreshing', 'deleting', 'deleted', 'error'];

export interface User { id: string; displayName: string; role: Role; groups: string[]; disabled: boolean }
export interface Me { kind: 'user'; user: User; csrfToken: string | null }

export interface MyPool {
  name: string;
  displayName: string;
  description: string;
  assignment: 'floating' | 'dedicated';
  persistence: 'persistent' | 'refresh' | 'delete';
  available: boolean;
  maintenance: boolean;
  desktop: { id: string; name: string; state: DesktopState; session: string | null } | null;
}

export interface UserSession {
  id: string; desktop: string; pool: string; state: string; createdAt: number;
  connectedAt: number | null; disconnectedAt: number | null; endedAt: number | null;
}

export interface RequestResult {
  outcome: string;
  state: DesktopState;
  session: UserSession;
  desktop: { id: string; name: string; pool: string; state: DesktopState; session: string | null };
}

export interface Ticket { ticket: string; tunnel: string; expiresAt: string; readOnly: boolean }

export interface Pool {
  name: string; displayName: string; description: string;
  assignment: 'floating' | 'dedicated'; persistence: 'persistent' | 'refresh' | 'delete';
  size: { min: number; max: number; spare: number };
  naming: string;
  resources: { vcpu: number; memoryMiB: number; diskGiB: number; network: string; graphics: string };
  image: string; provider: string; clone: 'linked' | 'full';
  entitlements: { users: string[]; groups: string[] };
  enabled: boolean; maintenance: boolean; deleting: boolean;
  counts: Record<DesktopState, number>;
  rollout: { target: string; upToDate: number; total: number };
}

export interface Desktop {
  id: string; pool: string; name: string; state: DesktopState; provider: string; host: string; mac: string;
  user: string; session: string; image: string; createdAt: number; updatedAt: number; stateSince: number;
  failures: number; lastError: string;
  /** When its host stopped answering (ms), 0 = reachable: a mark, not a state; it is not handed out meanwhile. */
  unreachableSince?: number;
}

export interface Session {
  id: string; user: string; desktop: string; pool: string; state: 'starting' | 'connected' | 'disconnected' | 'ended';
  clientAddress: string; createdAt: number; connectedAt: number; disconnectedAt: number; lastActivityAt: number;
  endedAt: number; endReason: string;
  /** The logon timeline: phase → ms (absent until known); see LOGON_PHASES in server/broker/model.ts. */
  logon?: LogonTimeline;
  /** Idle seconds the guest's agent last reported, and when (0 = never). */
  guestIdleSeconds?: number; guestIdleAt?: number;
  /** The enrolled device it was requested from (docs/devices.md). */
  device?: { id: string; name: string };
}

export const LOGON_PHASES = ['authentication', 'assignment', 'desktop_ready', 'home_mapped', 'tunnel_connected', 'first_frame', 'guest_logon'] as const;
export type LogonPhase = (typeof LOGON_PHASES)[number];
export type LogonTimeline = Partial<Record<LogonPhase | 'click_to_usable', number>>;

export interface Host {
  provider: string; name: string; maintenance: boolean;
  /** false when the host's hypervisor does not answer (nothing is placed there); absent = reachable. */
  reachable?: boolean;
  capacity: { vcpu: number; memoryMiB: number };
  used: { vcpu: number; memoryMiB: number; desktops: number };
}

export interface AuditEntry {
  id: string; at: string; actor: string; role: string; action: string; targetType: string; target: string;
  address: string; outcome: 'ok' | 'denied' | 'failed'; details: Record<string, unknown>;
}

/** GET /auth/lockouts and /users/{id}/lockout: the login throttle's view of a user name. */
export interface Lockout {
  user: string;
  state: 'locked' | 'throttled' | 'failing' | 'clear';
  failures: number;
  retryAfterSeconds: number;
  addresses: { address: string; failures: number; blocked: boolean; retryAfterSeconds: number }[];
}
export interface Lockouts {
  mode: 'progressive' | 'hard';
  accounts: Lockout[];
  addresses: { address: string; accounts: number; retryAfterSeconds: number }[];
}
