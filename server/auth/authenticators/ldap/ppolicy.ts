// The password policy control (draft-behera-ldap-password-policy, OpenLDAP's ppolicy overlay):
// sent with the user's bind, the server answers with why a bind failed or what must happen
// next (expired, locked, change after reset). ldapts parses a response control into the request
// control of the same type, so this one instance carries the answer back.
import { Control, type BerReader } from 'ldapts';

export const PPOLICY_OID = '1.3.6.1.4.1.42.2.27.8.5.1';

export class PasswordPolicyControl extends Control {
  /** The ppolicy error number, if the server sent one (0 expired, 1 locked, 2 change after reset). */
  error?: number;
  /** Seconds before the password expires, or grace logins left. */
  warning?: { timeBeforeExpiration?: number; graceAuthNsRemaining?: number };

  constructor() {
    super(PPOLICY_OID, { critical: false });
  }

  override parseControl(reader: BerReader): void {
    parsePasswordPolicyValue(Buffer.from(reader.remainingBuffer), this);
  }
}

/** Reads one DER tag-length-value at `i`; null when the bytes are short. */
function tlv(buf: Buffer, i: number): { tag: number; start: number; end: number } | null {
  if (i + 2 > buf.length) return null;
  const tag = buf[i]!;
  let len = buf[i + 1]!;
  let start = i + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > buf.length) return null;
    len = 0;
    for (let k = 0; k < n; k++) len = (len << 8) | buf[start + k]!;
    start += n;
  }
  return start + len <= buf.length ? { tag, start, end: start + len } : null;
}

const intOf = (buf: Buffer, start: number, end: number) => {
  let v = 0;
  for (let k = start; k < end; k++) v = v * 256 + buf[k]!;
  return v;
};

/** PasswordPolicyResponseValue ::= SEQUENCE { warning [0] CHOICE {...} OPTIONAL, error [1] ENUMERATED OPTIONAL } */
export function parsePasswordPolicyValue(buf: Buffer, into: { error?: number; warning?: { timeBeforeExpiration?: number; graceAuthNsRemaining?: number } }): void {
  const seq = tlv(buf, 0);
  if (!seq || seq.tag !== 0x30) return;
  let i = seq.start;
  while (i < seq.end) {
    const f = tlv(buf, i);
    if (!f) return;
    if (f.tag === 0xa0) {
      const w = tlv(buf, f.start);
      if (w?.tag === 0x80) into.warning = { timeBeforeExpiration: intOf(buf, w.start, w.end) };
      if (w?.tag === 0x81) into.warning = { graceAuthNsRemaining: intOf(buf, w.start, w.end) };
    } else if (f.tag === 0x81) {
      into.error = intOf(buf, f.start, f.end);
    }
    i = f.end;
  }
}
