// Converting Redis hashes to the broker's records.
import { LOGON_PHASES, type Desktop, type DesktopMigration, type LogonTimeline, type Session, type SessionState } from '../broker/model.ts';
import type { DesktopState } from '../broker/state-machine.ts';

/**
 * A hash a script returned as one JSON object (lua/hash-json.lua: '{}' when there is
 * none), as field → value.
 */
export function hashOfJson(json: string | undefined): Record<string, string> {
  return json ? (JSON.parse(json) as Record<string, string>) : {};
}

const num = (v: string | undefined) => (v === undefined || v === '' ? 0 : Number(v));

export function toDesktop(h: Record<string, string>): Desktop | null {
  if (!h.id) return null;
  return {
    id: h.id,
    pool: h.pool ?? '',
    name: h.name ?? '',
    state: (h.state ?? 'error') as DesktopState,
    provider: h.provider ?? '',
    host: h.host ?? '',
    mac: h.mac ?? '',
    user: h.user ?? '',
    session: h.session ?? '',
    image: h.image ?? '',
    createdAt: num(h.createdAt),
    updatedAt: num(h.updatedAt),
    stateSince: num(h.stateSince),
    failures: num(h.failures),
    nextAttemptAt: num(h.nextAttemptAt),
    lastError: h.lastError ?? '',
    unreachableSince: num(h.unreachableSince),
    ...migrationOf(h.migration),
    ...(h.readyMs ? { readyMs: num(h.readyMs) } : {}),
    ...(h.readyVia === 'vdi' || h.readyVia === 'qga' || h.readyVia === 'grace' ? { readyVia: h.readyVia } : {}),
    ...(h.readyAt ? { readyAt: num(h.readyAt) } : {}),
  };
}

/** The running migration's progress, kept as JSON in the desktop's `migration` field. */
function migrationOf(v: string | undefined): { migration?: DesktopMigration } {
  if (!v) return {};
  try {
    return { migration: JSON.parse(v) as DesktopMigration };
  } catch {
    return {};
  }
}

export function toSession(h: Record<string, string>): Session | null {
  if (!h.id) return null;
  return {
    id: h.id,
    user: h.user ?? '',
    desktop: h.desktop ?? '',
    pool: h.pool ?? '',
    state: (h.state ?? 'ended') as SessionState,
    clientAddress: h.clientAddress ?? '',
    createdAt: num(h.createdAt),
    connectedAt: num(h.connectedAt),
    disconnectedAt: num(h.disconnectedAt),
    lastActivityAt: num(h.lastActivityAt),
    endedAt: num(h.endedAt),
    endReason: h.endReason ?? '',
    bytesIn: num(h.tunnelBytesIn),
    bytesOut: num(h.tunnelBytesOut),
    connectedMs: num(h.tunnelMs),
    tunnels: num(h.tunnels),
    logon: logonOf(h),
    guestIdleSeconds: num(h.guestIdleSeconds),
    guestIdleAt: num(h.guestIdleAt),
    ...(h.device ? { device: { id: h.device, name: h.deviceName ?? '' } } : {}),
  };
}

/** The session's `logon:<phase>` fields (ms) as its timeline. */
function logonOf(h: Record<string, string>): LogonTimeline {
  const out: LogonTimeline = {};
  for (const p of [...LOGON_PHASES, 'click_to_usable'] as const) {
    const v = h[`logon:${p}`];
    if (v !== undefined && v !== '' && Number.isFinite(Number(v))) out[p] = Number(v);
  }
  return out;
}

/** Script replies are arrays of strings (or nested nulls); this names the error shape. */
export type ScriptReply = [string, ...(string | null)[]];
