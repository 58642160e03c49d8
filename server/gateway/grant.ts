// Connection grants: the only way into the built-in gateway. The broker's tunnel issues one
// for each connection it opens, naming exactly what that connection may do: reach one VNC
// endpoint (host, port) or join one live connection ($id), read-only or not, through one
// gateway (its address), within a few seconds, once. The gateway takes all of that from the
// grant, never from the client's `connect` values. A grant is signed, not encrypted (it
// holds no secret; the console password still travels in `connect`): HMAC-SHA256 under a key
// derived from the tunnel secret every replica shares, so any replica's gateway can check a
// grant another replica issued (helpdesk shadowing). Its nonce is remembered until it
// expires, so it works once. See docs/gateway.md.
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/** How long a grant is valid: the tunnel uses it at once; the rest absorbs replicas' clock skew. */
export const GRANT_TTL_MS = 15_000;
/** Grants claiming to live longer than this (a skewed or forged clock) are refused. */
const MAX_TTL_MS = 60_000;
const PREFIX = 'vdi-grant.1.';
const MAX_GRANT_LENGTH = 2048;

export type GrantTarget = { host: string; port: number } | { join: string };

export type Grant = GrantTarget & {
  /** The gateway it is for (its address, see endpoint.ts). */
  gateway: string;
  readOnly: boolean;
  /** Expiry, ms since the epoch. */
  exp: number;
  nonce: string;
};

type Body = { v: 1; aud: string; ro: boolean; exp: number; n: string; host?: string; port?: number; join?: string };

/** The grant key, derived from the tunnel secret (a different key from the tickets'). */
export function grantKey(secret: string | Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'vdi-broker', 'gateway grants v1', 32));
}

const mac = (key: Buffer, payload: string) => createHmac('sha256', key).update(PREFIX).update(payload).digest();

/** A grant for one connection through `gateway`. */
export function issueGrant(key: Buffer, g: GrantTarget & { gateway: string; readOnly: boolean }, now = Date.now(), ttlMs = GRANT_TTL_MS): string {
  const target = 'join' in g ? { join: g.join } : { host: g.host, port: g.port };
  const body: Body = { v: 1, aud: g.gateway, ro: g.readOnly, exp: now + ttlMs, n: randomBytes(16).toString('base64url'), ...target };
  const payload = Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
  return `${PREFIX}${payload}.${mac(key, payload).toString('base64url')}`;
}

function decode(text: string): Body | null {
  try {
    const b = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Partial<Body> | null;
    if (!b || typeof b !== 'object' || b.v !== 1 || typeof b.aud !== 'string' || typeof b.ro !== 'boolean') return null;
    if (typeof b.exp !== 'number' || typeof b.n !== 'string' || b.n.length < 16 || b.n.length > 64) return null;
    if (b.join !== undefined) return typeof b.join === 'string' && b.join.startsWith('$') && b.join.length <= 128 && b.host === undefined ? (b as Body) : null;
    const portOk = Number.isInteger(b.port) && b.port! >= 1 && b.port! <= 65535;
    return typeof b.host === 'string' && b.host.length > 0 && b.host.length <= 255 && portOk ? (b as Body) : null;
  } catch {
    return null;
  }
}

/** Checks grants for one gateway and remembers used ones until they expire. */
export class GrantVerifier {
  private readonly used = new Map<string, number>();

  constructor(
    private readonly key: Buffer,
    /** This gateway's address: grants for another gateway are refused. */
    private readonly gateway: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** The grant, or why it is refused (for the log only: the client always gets the same answer). */
  take(token: string): { grant: Grant } | { refused: string } {
    if (token.length > MAX_GRANT_LENGTH || !token.startsWith(PREFIX)) return { refused: 'not a grant' };
    const [payload = '', sig = '', ...rest] = token.slice(PREFIX.length).split('.');
    const given = Buffer.from(sig, 'base64url');
    const want = mac(this.key, payload);
    if (rest.length || given.length !== want.length || !timingSafeEqual(given, want)) return { refused: 'bad signature' };
    const b = decode(payload);
    if (!b) return { refused: 'malformed' };
    const now = this.now();
    this.forget(now);
    if (!(b.exp > now)) return { refused: 'expired' };
    if (b.exp - now > MAX_TTL_MS) return { refused: 'lifetime too long' };
    if (b.aud !== this.gateway) return { refused: 'for another gateway' };
    if (this.used.has(b.n)) return { refused: 'already used' };
    this.used.set(b.n, b.exp);
    const base = { gateway: b.aud, readOnly: b.ro, exp: b.exp, nonce: b.n };
    return { grant: b.join !== undefined ? { ...base, join: b.join } : { ...base, host: b.host!, port: b.port! } };
  }

  /** Used nonces still remembered (tests). */
  get remembered(): number {
    return this.used.size;
  }

  private forget(now: number): void {
    for (const [n, exp] of this.used) if (exp <= now) this.used.delete(n);
  }
}
