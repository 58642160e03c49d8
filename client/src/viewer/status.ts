// Every Guacamole status code with what it means to the person in front of the screen, and
// whether reconnecting (with a fresh ticket) can help. The words are in the catalogue
// (guac.<name>), picked in the language in use when the status arrives.
import { t } from '../i18n/index.ts';

export interface StatusInfo { name: string; message: string; retry: boolean }

export const GUAC_STATUS: Record<number, Omit<StatusInfo, 'message'>> = {
  0x0000: { name: 'SUCCESS', retry: false },
  0x0100: { name: 'UNSUPPORTED', retry: false },
  0x0200: { name: 'SERVER_ERROR', retry: true },
  0x0201: { name: 'SERVER_BUSY', retry: true },
  0x0202: { name: 'UPSTREAM_TIMEOUT', retry: true },
  0x0203: { name: 'UPSTREAM_ERROR', retry: true },
  0x0204: { name: 'RESOURCE_NOT_FOUND', retry: false },
  0x0205: { name: 'RESOURCE_CONFLICT', retry: true },
  0x0206: { name: 'RESOURCE_CLOSED', retry: true },
  0x0207: { name: 'UPSTREAM_NOT_FOUND', retry: true },
  0x0208: { name: 'UPSTREAM_UNAVAILABLE', retry: true },
  0x0209: { name: 'SESSION_CONFLICT', retry: false },
  0x020a: { name: 'SESSION_TIMEOUT', retry: false },
  0x020b: { name: 'SESSION_CLOSED', retry: false },
  0x0300: { name: 'CLIENT_BAD_REQUEST', retry: true },
  0x0301: { name: 'CLIENT_UNAUTHORIZED', retry: true },
  0x0303: { name: 'CLIENT_FORBIDDEN', retry: false },
  0x0308: { name: 'CLIENT_TIMEOUT', retry: true },
  0x030d: { name: 'CLIENT_OVERRUN', retry: true },
  0x030f: { name: 'CLIENT_BAD_TYPE', retry: false },
  0x031d: { name: 'CLIENT_TOO_MANY', retry: true },
};

export function describeStatus(code: number | undefined, fallback?: string): StatusInfo {
  if (code === undefined || Number.isNaN(code)) return { name: 'DISCONNECTED', message: fallback || t('guac.dropped'), retry: true };
  const known = GUAC_STATUS[code];
  if (known) return { ...known, message: t(`guac.${known.name}`) };
  const hex = `0x${code.toString(16).padStart(4, '0')}`;
  return { name: hex, message: t('guac.unknown', { error: fallback || t('guac.unexpected'), hex }), retry: code >= 0x0200 && code < 0x0300 };
}
