// Kiosk (thin client) mode. An enrolled device (docs/devices.md) is a kiosk in the mode the
// broker gives it (`GET /devices/me`): personal kiosk, shared lab terminal or room display.
// Without enrolment, `/?kiosk=1` still turns kiosk mode on for this browser (kept in
// localStorage and in a non-secret `vdi.kiosk` cookie the broker reads when it refuses
// unenrolled kiosks), `/?kiosk=0` turns it off.
import { ApiError, api } from './api.ts';
import type { MyPool } from './types.ts';

const KEY = 'vdi.kiosk';
const KIOSK_COOKIE = 'vdi.kiosk';

export type DeviceMode = 'personal-kiosk' | 'shared-lab' | 'room-display';

export interface KioskDevice {
  id: string;
  name: string;
  location: string;
  mode: DeviceMode;
  /** Shared lab terminals: idle seconds before logoff (0 = never). */
  idleSeconds: number;
  /** Room displays: the pool they show. */
  displayPool: string | null;
  /** The location's default pool, launched straight after login. */
  defaultPool: string | null;
}

/** What the broker says about this browser as a device. */
export interface DeviceStatus {
  /** none: a plain browser; revoked / unknown: the credential is refused (show the enrolment page). */
  state: 'enrolled' | 'none' | 'revoked' | 'unknown';
  device: KioskDevice | null;
  requireEnrolledKiosk: boolean;
}

let status: DeviceStatus = { state: 'none', device: null, requireEnrolledKiosk: false };

function urlFlag(): boolean {
  const q = new URLSearchParams(location.search).get('kiosk');
  let on = q === '1';
  try {
    if (q === '1') localStorage.setItem(KEY, '1');
    if (q === '0') localStorage.removeItem(KEY);
    on = localStorage.getItem(KEY) === '1';
  } catch {
    // storage disabled: the URL decides
  }
  document.cookie = on ? `${KIOSK_COOKIE}=1; Path=/api/v1; SameSite=Strict; Max-Age=34560000` : `${KIOSK_COOKIE}=; Path=/api/v1; Max-Age=0`;
  return on;
}

/** Asks the broker what this browser is (call before the first render). Never throws. */
export async function loadDevice(): Promise<DeviceStatus> {
  try {
    const r = await api.get<{ device: KioskDevice | null; requireEnrolledKiosk: boolean }>('/devices/me');
    status = { state: r.device ? 'enrolled' : 'none', device: r.device, requireEnrolledKiosk: r.requireEnrolledKiosk };
  } catch (e) {
    if (e instanceof ApiError && e.code === 'device_revoked') status = { ...status, state: 'revoked', device: null };
    else if (e instanceof ApiError && e.code === 'device_unknown') status = { ...status, state: 'unknown', device: null };
  }
  return status;
}

export function deviceStatus(): DeviceStatus {
  return status;
}

/** Kiosk mode: an enrolled device, or the URL flag on this browser. */
export function kioskMode(): boolean {
  const flag = urlFlag();
  return status.state === 'enrolled' || flag;
}

/**
 * Whether this browser must show the enrolment page instead of the login: its credential was
 * revoked or is unknown, or it is a kiosk without enrolment where the broker refuses those.
 */
export function mustEnrol(): boolean {
  if (status.state === 'revoked' || status.state === 'unknown') return true;
  return status.state === 'none' && status.requireEnrolledKiosk && urlFlag();
}

/** The pool a kiosk launches after login: the location's default pool, else the user's only pool. */
export function kioskPool(pools: MyPool[]): string | null {
  const usable = pools.filter((p) => p.available);
  const def = status.device?.defaultPool;
  if (def && usable.some((p) => p.name === def)) return def;
  return usable.length === 1 ? usable[0]!.name : null;
}

/**
 * Watches the device while the kiosk runs: when the broker stops accepting it (revoked), calls
 * onGone. Polls every `ms` (a request every few seconds is nothing for the broker).
 */
export function watchDevice(onGone: (why: 'revoked' | 'unknown') => void, ms = 5_000): () => void {
  if (status.state !== 'enrolled') return () => undefined;
  const t = setInterval(() => {
    void loadDevice().then((s) => {
      if (s.state === 'revoked' || s.state === 'unknown') onGone(s.state);
    });
  }, ms);
  return () => clearInterval(t);
}

/**
 * Shared lab terminals: calls onIdle after `seconds` without keyboard, mouse or touch input
 * anywhere in the page (the desktop viewer included: events are watched in the capture phase).
 */
export function idleLogoff(seconds: number, onIdle: () => void): () => void {
  if (!(seconds > 0)) return () => undefined;
  let last = Date.now();
  const bump = () => void (last = Date.now());
  const events = ['keydown', 'pointerdown', 'pointermove', 'wheel', 'touchstart'] as const;
  for (const e of events) window.addEventListener(e, bump, { capture: true, passive: true });
  const t = setInterval(() => {
    if (Date.now() - last >= seconds * 1000) {
      stop();
      onIdle();
    }
  }, 1000);
  function stop() {
    clearInterval(t);
    for (const e of events) window.removeEventListener(e, bump, { capture: true });
  }
  return stop;
}

/**
 * Shared lab terminals, at logoff: forget everything the last user left in this browser
 * (storage, caches, IndexedDB, script-visible cookies). The device credential is an HttpOnly
 * cookie, so it stays; so does the kiosk flag.
 */
export async function wipeBrowserState(): Promise<void> {
  const flag = (() => {
    try {
      return localStorage.getItem(KEY);
    } catch {
      return null;
    }
  })();
  try {
    localStorage.clear();
    sessionStorage.clear();
    if (flag) localStorage.setItem(KEY, flag);
  } catch {
    // storage disabled: nothing kept there
  }
  for (const c of document.cookie.split(';')) {
    const name = c.split('=')[0]!.trim();
    if (!name || name === KIOSK_COOKIE) continue;
    for (const path of ['/', '/api/v1', location.pathname]) document.cookie = `${name}=; Path=${path}; Max-Age=0`;
  }
  try {
    if ('caches' in window) for (const k of await caches.keys()) await caches.delete(k);
    const dbs = (await indexedDB.databases?.()) ?? [];
    for (const db of dbs) if (db.name) indexedDB.deleteDatabase(db.name);
  } catch {
    // not supported here: nothing kept there either
  }
}

/** Shared lab terminals, when idle: log off the user's desktop sessions too (the next user gets a clean one). */
export async function logoffMySessions(): Promise<void> {
  const { sessions } = await api.get<{ sessions: { id: string }[] }>('/me/sessions').catch(() => ({ sessions: [] as { id: string }[] }));
  for (const s of sessions) await api.post(`/me/sessions/${encodeURIComponent(s.id)}/logoff`).catch(() => undefined);
}

/**
 * Room displays: no login; the display logs in as its own device principal and launches its
 * pool. Retries every 30 s while it fails (the pool may be full or in maintenance).
 */
export async function startRoomDisplay<U>(): Promise<{ pool: string; user: U; csrfToken: string }> {
  return api.post<{ pool: string; user: U; csrfToken: string }>('/devices/me/display');
}
