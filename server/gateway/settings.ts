// The VNC connection parameters we advertise in `args` and how `connect` values map to
// settings. Like guacd: a boolean is true only for "true"; empty means the default; "false"
// and "0" are real values, never dropped.
import { Encoding } from './rfb.client.ts';
import { GuacError, Status } from './protocol.ts';

export const PROTOCOL_VERSION = 'VERSION_1_5_0';

/** Parameter names in the order `args` lists them (after the version). */
export const VNC_ARGS = [
  'hostname',
  'port',
  'read-only',
  'encodings',
  'password',
  'swap-red-blue',
  'color-depth',
  'cursor',
  'autoretry',
  'clipboard-encoding',
  'disable-copy',
  'disable-paste',
] as const;

export type ClipboardEncoding = 'ISO8859-1' | 'UTF-8' | 'UTF-16' | 'CP1252';

export type VncSettings = {
  hostname: string;
  port: number;
  readOnly: boolean;
  encodings: number[];
  password: string | undefined;
  swapRedBlue: boolean;
  colorDepth: number;
  remoteCursor: boolean;
  autoretry: number;
  clipboardEncoding: ClipboardEncoding;
  disableCopy: boolean;
  disablePaste: boolean;
  /** Values we could not use as given (logged, never containing the password). */
  warnings: string[];
};

const ENCODING_NAMES: Record<string, number> = {
  zrle: Encoding.ZRLE,
  copyrect: Encoding.CopyRect,
  raw: Encoding.Raw,
};

/**
 * Maps `connect` values (version first) to settings; throws CLIENT_BAD_REQUEST. With `granted`
 * (the connection's grant), the endpoint and read-only flag are the grant's, whatever the
 * client sent.
 */
export function parseConnectArgs(values: string[], granted?: { host: string; port: number; readOnly: boolean }): VncSettings {
  // Like guacd, values are positional (the first is the client's protocol version);
  // missing trailing values mean "default", extra ones are a malformed request.
  if (values.length > VNC_ARGS.length + 1) {
    throw new GuacError(`connect has ${values.length} values, expected ${VNC_ARGS.length + 1}`, Status.CLIENT_BAD_REQUEST);
  }
  const v = new Map<string, string>();
  VNC_ARGS.forEach((name, i) => v.set(name, values[i + 1] ?? ''));
  if (granted) {
    v.set('hostname', granted.host);
    v.set('port', String(granted.port));
    v.set('read-only', String(granted.readOnly));
  }
  const warnings: string[] = [];
  const str = (name: string) => v.get(name) ?? '';
  const bool = (name: string) => str(name) === 'true';
  const int = (name: string, def: number, min: number, max: number) => {
    const s = str(name);
    if (s === '') return def;
    if (!/^-?\d+$/.test(s) || Number(s) < min || Number(s) > max) {
      warnings.push(`${name}: "${s}" is not a whole number in ${min}..${max}; using ${def}`);
      return def;
    }
    return Number(s);
  };

  const hostname = str('hostname');
  if (hostname === '') throw new GuacError('hostname is required', Status.CLIENT_BAD_REQUEST);
  const portText = str('port');
  const port = portText === '' ? 5900 : Number(portText);
  if (!/^\d+$/.test(portText || '5900') || port < 1 || port > 65535) {
    throw new GuacError(`port "${portText}" is not a TCP port`, Status.CLIENT_BAD_REQUEST);
  }

  let colorDepth = int('color-depth', 24, 0, 32);
  if (colorDepth === 0) colorDepth = 24;
  if (colorDepth !== 24 && colorDepth !== 32) {
    warnings.push(`color-depth ${colorDepth} is not supported; using 24`);
    colorDepth = 24;
  }

  const cursor = str('cursor');
  if (cursor !== '' && cursor !== 'local' && cursor !== 'remote') warnings.push(`cursor "${cursor}" unknown; using local`);
  const remoteCursor = cursor === 'remote';

  const encodings: number[] = [];
  const wanted = str('encodings').trim();
  for (const name of wanted === '' ? ['zrle', 'copyrect', 'raw'] : wanted.split(/\s+/)) {
    const e = ENCODING_NAMES[name.toLowerCase()];
    if (e === undefined) warnings.push(`encoding "${name}" is not supported; ignored`);
    else if (!encodings.includes(e)) encodings.push(e);
  }
  if (!encodings.includes(Encoding.Raw)) encodings.push(Encoding.Raw);
  encodings.push(Encoding.DesktopSize, Encoding.ExtendedDesktopSize, Encoding.LastRect);
  if (!remoteCursor) encodings.push(Encoding.Cursor);

  const ce = str('clipboard-encoding').toUpperCase();
  let clipboardEncoding: ClipboardEncoding = 'ISO8859-1';
  if (ce === 'UTF-8' || ce === 'UTF-16' || ce === 'CP1252' || ce === 'ISO8859-1') clipboardEncoding = ce;
  else if (ce !== '') warnings.push(`clipboard-encoding "${ce}" unknown; using ISO8859-1`);

  const password = v.get('password');
  return {
    hostname,
    port,
    readOnly: bool('read-only'),
    encodings,
    password: password === '' ? undefined : password,
    swapRedBlue: bool('swap-red-blue'),
    colorDepth,
    remoteCursor,
    autoretry: int('autoretry', 0, 0, 100),
    clipboardEncoding,
    disableCopy: bool('disable-copy'),
    disablePaste: bool('disable-paste'),
    warnings,
  };
}

/** VNC clipboard bytes → text, per clipboard-encoding. */
export function clipboardToText(bytes: Buffer, enc: ClipboardEncoding): string {
  if (enc === 'UTF-8') return bytes.toString('utf8');
  if (enc === 'UTF-16') return bytes.toString('utf16le');
  return bytes.toString('latin1');
}

/** Text → VNC clipboard bytes; characters outside Latin-1 become '?'. */
export function textToClipboard(text: string, enc: ClipboardEncoding): Buffer {
  if (enc === 'UTF-8') return Buffer.from(text, 'utf8');
  if (enc === 'UTF-16') return Buffer.from(text, 'utf16le');
  let s = '';
  for (const ch of text) s += ch.codePointAt(0)! <= 0xff ? ch : '?';
  return Buffer.from(s, 'latin1');
}
