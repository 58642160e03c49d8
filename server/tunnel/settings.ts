// The guacd connection parameters for a desktop console. Every value is a string: guacd reads
// strings, and guacamole-lite's handshake (`value || null`) would turn a boolean false or a
// number 0 into an empty value ("default"), which is not what was asked for.
import type { ConsoleEndpoint } from '../providers/index.ts';

export type GuacSettings = Record<string, string>;

/** Stringifies settings the way guacd expects them: true/false, decimal numbers. */
export function guacString(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return String(v);
}

export function toGuacSettings(o: Record<string, string | number | boolean | null | undefined>): GuacSettings {
  const out: GuacSettings = {};
  for (const [k, v] of Object.entries(o)) out[k] = guacString(v);
  return out;
}

/** The user's folder as an RDP redirected drive (guacd's drive-path is on the guacd host). */
export interface DriveRedirect {
  /** The user's folder as mounted on the guacd host (share guacdPath + folder name). */
  path: string;
  /** Drive name the desktop shows (config shares.rdpDriveName). */
  name: string;
  /** Pool fileTransfer switches: browser download from / upload to the drive. */
  download: boolean;
  upload: boolean;
}

/** guacd's drive-redirection parameters for an RDP connection. */
export function driveSettings(d: DriveRedirect): GuacSettings {
  return toGuacSettings({
    'enable-drive': true,
    'drive-path': d.path,
    'drive-name': d.name,
    'create-drive-path': true,
    'disable-download': !d.download,
    'disable-upload': !d.upload,
  });
}

/** A user's own connection to their desktop's console (RDP: with their folder as a drive when given). */
export function consoleSettings(ep: ConsoleEndpoint, drive?: DriveRedirect): GuacSettings {
  if (ep.protocol === 'rdp') {
    return toGuacSettings({
      ...(drive ? driveSettings(drive) : {}),
      hostname: ep.host,
      port: ep.port,
      username: ep.username ?? '',
      password: ep.password ?? '',
      // The console's own settings when its driver gives them (manual machines), else guacd's "any".
      security: ep.rdp?.security ?? 'any',
      'ignore-cert': ep.rdp?.ignoreCert ?? true,
      ...(ep.rdp?.domain ? { domain: ep.rdp.domain } : {}),
      'resize-method': 'display-update',
      'enable-wallpaper': false,
      'disable-audio': false,
    });
  }
  return toGuacSettings({
    hostname: ep.host,
    port: ep.port,
    password: ep.password ?? '',
    'read-only': false,
    'swap-red-blue': false,
    'disable-copy': false,
    'disable-paste': false,
    // No automatic reconnect inside guacd: the browser reconnects with a fresh ticket.
    autoretry: 0,
  });
}

/** A helpdesk's read-only join of a live connection. */
export const SHADOW_SETTINGS: GuacSettings = toGuacSettings({ 'read-only': true });
