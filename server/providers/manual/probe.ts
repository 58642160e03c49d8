// Is a machine's console answering? VNC: the server speaks first with its RFB banner
// ("RFB 003.008\n"); that banner is the answer. RDP: the client speaks first; we send a minimal
// X.224 Connection Request carrying an RDP Negotiation Request (TLS | CredSSP) and expect an
// X.224 Connection Confirm (MS-RDPBCGR 2.2.1.1 / 2.2.1.2); no login, no TLS.
// VNC servers (TigerVNC among them) count a connection dropped before authentication as a
// security failure and, after a few, refuse everyone from that address for a while ("Too many
// security failures"), which would lock users out of a machine the broker merely checks. So
// after the banner the VNC probe finishes the security handshake when it can (security type
// None, or VNC authentication with the machine's password): a successful authentication
// clears the server's mark. It closes before ClientInit, so no session is ever started.
import net from 'node:net';
import { vncAuthResponse } from '../../gateway/vnc-auth.ts';

export interface ProbeResult {
  ok: boolean;
  /** What answered ("RFB 003.008", "X.224 CC") or why not. */
  detail: string;
}

/** TPKT (4) + X.224 CR (7) + RDP_NEG_REQ (8) = 19 bytes. */
export const X224_CONNECTION_REQUEST = Buffer.from([
  0x03, 0x00, 0x00, 0x13, // TPKT: version 3, length 19
  0x0e, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, // X.224: LI 14, CR, dst-ref, src-ref, class 0
  0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00, // RDP_NEG_REQ: PROTOCOL_SSL | PROTOCOL_HYBRID
]);

/** An RFB banner: "RFB 003.00x\n" (any 3.x version). */
export function isRfbBanner(b: Buffer): boolean {
  return b.length >= 12 && /^RFB 003\.\d{3}\n$/.test(b.subarray(0, 12).toString('latin1'));
}

/** A TPKT-framed X.224 Connection Confirm (TPDU code 0xD0). */
export function isX224ConnectionConfirm(b: Buffer): boolean {
  return b.length >= 7 && b[0] === 0x03 && b.readUInt16BE(2) >= 7 && (b[5]! & 0xf0) === 0xd0;
}

/** After the banner: bytes to send and what to read next, or null to stop (best effort). */
type Step = { need: number; then: (b: Buffer) => { send?: Buffer | string; next: Step | null } };

function vncHandshake(banner: string, password: string | undefined): { send: string; next: Step | null } {
  const v33 = banner === 'RFB 003.003';
  const afterType = (type: number): { send?: Buffer | string; next: Step | null } => {
    if (type === 1) return { next: v33 ? null : { need: 4, then: () => ({ next: null }) } };
    if (type === 2 && password !== undefined) {
      return { next: { need: 16, then: (challenge) => ({ send: vncAuthResponse(password, challenge), next: { need: 4, then: () => ({ next: null }) } }) } };
    }
    return { next: null };
  };
  if (v33) return { send: 'RFB 003.003\n', next: { need: 4, then: (b) => afterType(b.readUInt32BE(0)) } };
  return {
    send: 'RFB 003.008\n',
    next: {
      need: 1,
      then: (b) => {
        const n = b[0]!;
        if (n === 0) return { next: null };
        return {
          next: {
            need: n,
            then: (types) => {
              const pick = types.includes(1) ? 1 : types.includes(2) && password !== undefined ? 2 : 0;
              if (!pick) return { next: null };
              return { send: Buffer.from([pick]), ...afterType(pick) };
            },
          },
        };
      },
    },
  };
}

/** `password`: the VNC console's password, used only to authenticate politely after the banner. */
export function probeConsole(protocol: 'vnc' | 'rdp', host: string, port: number, timeoutMs: number, password?: string): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let result: ProbeResult | null = null;
    let step: Step | null = null;
    let done = false;
    const s = net.connect({ host, port });
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(result ?? { ok: false, detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
    s.once('connect', () => {
      if (protocol === 'rdp') s.write(X224_CONNECTION_REQUEST);
    });
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (protocol === 'rdp') {
        if (buf.length >= 7) finish(isX224ConnectionConfirm(buf) ? { ok: true, detail: 'X.224 CC' } : { ok: false, detail: 'not an X.224 connection confirm' });
        return;
      }
      if (!result) {
        if (buf.length < 12) return;
        if (!isRfbBanner(buf)) return finish({ ok: false, detail: 'not an RFB banner' });
        const banner = buf.subarray(0, 11).toString('latin1');
        result = { ok: true, detail: banner };
        buf = buf.subarray(12);
        const h = vncHandshake(banner, password);
        s.write(h.send);
        step = h.next;
      }
      while (step && buf.length >= step.need) {
        const out = step.then(buf.subarray(0, step.need));
        buf = buf.subarray(step.need);
        if (out.send) s.write(out.send);
        step = out.next;
      }
      if (!step) finish(result);
    });
    s.once('error', (err: NodeJS.ErrnoException) => finish(result ?? { ok: false, detail: err.code ?? err.message }));
    s.once('close', () => finish(result ?? { ok: false, detail: 'closed without answering' }));
  });
}
