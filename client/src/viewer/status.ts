// Every Guacamole status code with what it means to the person in front of the screen, and
// whether reconnecting (with a fresh ticket) can help.
export interface StatusInfo { name: string; message: string; retry: boolean }

export const GUAC_STATUS: Record<number, StatusInfo> = {
  0x0000: { name: 'SUCCESS', message: 'The connection was closed.', retry: false },
  0x0100: { name: 'UNSUPPORTED', message: 'The desktop does not support what was asked (unsupported operation).', retry: false },
  0x0200: { name: 'SERVER_ERROR', message: 'The streaming gateway hit an internal error.', retry: true },
  0x0201: { name: 'SERVER_BUSY', message: 'The streaming gateway is busy.', retry: true },
  0x0202: { name: 'UPSTREAM_TIMEOUT', message: 'The desktop stopped answering.', retry: true },
  0x0203: { name: 'UPSTREAM_ERROR', message: 'The desktop\'s console sent an error or malformed data.', retry: true },
  0x0204: { name: 'RESOURCE_NOT_FOUND', message: 'The desktop could not be found.', retry: false },
  0x0205: { name: 'RESOURCE_CONFLICT', message: 'The desktop is busy with another operation.', retry: true },
  0x0206: { name: 'RESOURCE_CLOSED', message: 'The desktop\'s stream was closed.', retry: true },
  0x0207: { name: 'UPSTREAM_NOT_FOUND', message: 'The streaming gateway or the desktop\'s console is unreachable.', retry: true },
  0x0208: { name: 'UPSTREAM_UNAVAILABLE', message: 'The broker or the desktop is temporarily unavailable.', retry: true },
  0x0209: { name: 'SESSION_CONFLICT', message: 'This desktop was opened in another window or tab.', retry: false },
  0x020a: { name: 'SESSION_TIMEOUT', message: 'The session timed out.', retry: false },
  0x020b: { name: 'SESSION_CLOSED', message: 'The session was logged off (by you, the helpdesk, or a timeout).', retry: false },
  0x0300: { name: 'CLIENT_BAD_REQUEST', message: 'The browser sent something the gateway did not understand.', retry: true },
  0x0301: { name: 'CLIENT_UNAUTHORIZED', message: 'The connection ticket was refused (expired or already used), or the console refused the login.', retry: true },
  0x0303: { name: 'CLIENT_FORBIDDEN', message: 'This session has ended or is no longer yours, or this page may not open it.', retry: false },
  0x0308: { name: 'CLIENT_TIMEOUT', message: 'The connection from this browser went silent (network trouble?).', retry: true },
  0x030d: { name: 'CLIENT_OVERRUN', message: 'The browser sent too much data at once.', retry: true },
  0x030f: { name: 'CLIENT_BAD_TYPE', message: 'The browser sent data of a type the desktop does not accept.', retry: false },
  0x031d: { name: 'CLIENT_TOO_MANY', message: 'Too many connections from this browser.', retry: true },
};

export function describeStatus(code: number | undefined, fallback?: string): StatusInfo {
  if (code === undefined || Number.isNaN(code)) return { name: 'DISCONNECTED', message: fallback || 'The connection dropped.', retry: true };
  const known = GUAC_STATUS[code];
  if (known) return known;
  const hex = `0x${code.toString(16).padStart(4, '0')}`;
  return { name: hex, message: `${fallback || 'Unexpected error'} (status ${hex}).`, retry: code >= 0x0200 && code < 0x0300 };
}
