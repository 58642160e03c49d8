import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createHmac } from 'node:crypto';
import { derivedKey } from '../store/secrets.ts';

// The wire format of our guest agent port (docs/agent.md): UTF-8 JSON objects, one per line,
// at most 64 KiB a line, every one with "v":1 and a "type". Everything the guest sends is
// untrusted: parsing never throws, and what does not fit is a drop with a reason (counted).

export const PROTOCOL_VERSION = 1;
export const MAX_LINE_BYTES = 64 * 1024;

export type DropReason =
  | 'oversized' | 'invalid_utf8' | 'malformed' | 'version' | 'unknown_type'
  | 'unauthenticated' | 'wrong_desktop' | 'bad_proof' | 'unknown_nonce' | 'unexpected_result';

/** What the guest may send, once checked for shape. */
export type GuestMessage =
  | { type: 'hello'; desktop: string; nonce: string; proof: string; agent: string; boot: string }
  | { type: 'hello_request' }
  | { type: 'result'; id: string; ok: boolean; error?: string; body: Record<string, unknown> }
  | { type: 'event'; event: GuestEventName; user?: string; idleSeconds?: number };

export const GUEST_EVENTS = ['logon_complete', 'session_end', 'poweroff', 'idle'] as const;
export type GuestEventName = (typeof GUEST_EVENTS)[number];

/**
 * Splits a byte stream into lines of at most `max` bytes (without the newline). A longer line
 * is never buffered beyond the limit: its bytes are thrown away up to the next newline and it
 * is reported once as oversized.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private discarding = false;

  constructor(private readonly max = MAX_LINE_BYTES) {}

  push(chunk: Buffer): Array<Buffer | 'oversized'> {
    const out: Array<Buffer | 'oversized'> = [];
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      const piece = chunk.subarray(start, end);
      if (!this.discarding) {
        if (this.size + piece.length > this.max) {
          this.discarding = true;
          this.parts = [];
          this.size = 0;
          out.push('oversized');
        } else if (piece.length) {
          this.parts.push(Buffer.from(piece));
          this.size += piece.length;
        }
      }
      if (nl === -1) break;
      if (!this.discarding) out.push(this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts));
      this.parts = [];
      this.size = 0;
      this.discarding = false;
      start = nl + 1;
    }
    return out;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const str = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;

/** Parses one line from the guest into a message, or the reason it is dropped. */
export function parseGuestLine(line: Buffer): GuestMessage | { drop: DropReason } {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch {
    return { drop: 'invalid_utf8' };
  }
  text = text.replace(/\r$/, '');
  if (!text.trim()) return { drop: 'malformed' };
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return { drop: 'malformed' };
  }
  if (!m || typeof m !== 'object' || Array.isArray(m)) return { drop: 'malformed' };
  const o = m as Record<string, unknown>;
  if (o.v !== PROTOCOL_VERSION) return { drop: 'version' };
  switch (o.type) {
    case 'hello':
      if (!str(o.desktop, 200) || !str(o.nonce, 64) || !str(o.proof, 128) || (o.agent !== undefined && !str(o.agent, 100)) || (o.boot !== undefined && !str(o.boot, 100))) return { drop: 'malformed' };
      return { type: 'hello', desktop: o.desktop, nonce: o.nonce, proof: o.proof, agent: (o.agent as string | undefined) ?? '', boot: (o.boot as string | undefined) ?? '' };
    case 'hello_request':
      return { type: 'hello_request' };
    case 'result': {
      if (!str(o.id, 64) || typeof o.ok !== 'boolean' || (o.error !== undefined && !str(o.error, 2000))) return { drop: 'malformed' };
      const { v: _v, type: _t, id, ok, error, ...body } = o;
      return { type: 'result', id: id as string, ok: ok as boolean, ...(typeof error === 'string' ? { error } : {}), body };
    }
    case 'event': {
      if (!(GUEST_EVENTS as readonly unknown[]).includes(o.event)) return { drop: 'unknown_type' };
      if (o.user !== undefined && !str(o.user, 256)) return { drop: 'malformed' };
      const idle = o.idleSeconds;
      if (idle !== undefined && !(typeof idle === 'number' && Number.isFinite(idle) && idle >= 0)) return { drop: 'malformed' };
      return { type: 'event', event: o.event as GuestEventName, ...(typeof o.user === 'string' && o.user ? { user: o.user } : {}), ...(typeof idle === 'number' ? { idleSeconds: idle } : {}) };
    }
    default:
      return { drop: 'unknown_type' };
  }
}

/** One line to the guest. */
export function encode(type: string, body: Record<string, unknown> = {}): Buffer {
  return Buffer.from(`${JSON.stringify({ v: PROTOCOL_VERSION, type, ...body })}\n`);
}

export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

/** What the guest's agent proves it knows: sha256("<nonce>:<desktop id>:<secret>") in hex. */
export function helloProof(nonce: string, desktop: string, secret: string): string {
  return createHash('sha256').update(`${nonce}:${desktop}:${secret}`).digest('hex');
}

/** Constant-time comparison of a claimed proof with the expected one. */
export function proofMatches(claimed: string, expected: string): boolean {
  const a = Buffer.from(claimed, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The per-desktop agent secret: every replica derives it from the tunnel secret, so nothing is
 * stored. hex(HMAC-SHA256(derivedKey(tunnelSecret, 'agent secrets v1'), desktopId)).
 */
export function agentSecret(tunnelSecret: string, desktopId: string): string {
  return createHmac('sha256', derivedKey(tunnelSecret, 'agent secrets v1')).update(desktopId).digest('hex');
}
