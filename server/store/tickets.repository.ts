// What the streaming tunnel keeps in Redis: single-use connection tickets (opaque to Redis:
// stored under a hash of the ticket and encrypted with a key derived from it), the tunnel
// secret, the tunnel fields of a session hash, and the replicas' pub/sub channel.
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import { sharedSecret } from './secrets.ts';

/**
 * Claims the session's tunnel for `owner` (the live connection); refuses ended sessions (0).
 * Returns the claim's sequence number: of two tabs, the later claim wins the takeover.
 */
const CLAIM = `
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'ended' then return 0 end
redis.call('HSET', KEYS[1], 'tunnelOwner', ARGV[1], 'guacConnection', ARGV[2], 'guacd', ARGV[3])
return redis.call('HINCRBY', KEYS[1], 'tunnels', 1)`;

/**
 * Adds a finished connection's traffic to the session and, when it still owned the tunnel,
 * clears the owner. Returns {wasOwner (0/1), current owner or ''}. Nothing is written to a
 * hash that no longer exists (an expired session stays gone).
 */
const RELEASE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return { 0, '' } end
redis.call('HINCRBY', KEYS[1], 'tunnelBytesIn', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'tunnelBytesOut', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'tunnelMs', ARGV[4])
local owner = redis.call('HGET', KEYS[1], 'tunnelOwner') or ''
if ARGV[1] ~= '' and owner == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'tunnelOwner', 'guacConnection', 'guacd')
  return { 1, '' }
end
return { 0, owner }`;

export interface SessionTunnel {
  state: string;
  user: string;
  desktop: string;
  owner: string;
  guacConnection: string;
  guacd: string;
  bytesIn: number;
  bytesOut: number;
  ms: number;
  tunnels: number;
}

export type TunnelEvent =
  | { type: 'takeover'; session: string; owner: string; seq: number }
  | { type: 'ended'; session: string; guacConnection: string }
  /** The user took control back from the helpdesk's shadow: its control tunnels close (server/broker/shadow.service.ts). */
  | { type: 'shadow-revoked'; session: string }
  /** The helpdesk disconnected the user's viewer (the session stays, like closing the tab). */
  | { type: 'disconnect'; session: string };

type Scripted = Redis & {
  vdiTunnelClaim(key: string, owner: string, conn: string, guacd: string): Promise<number>;
  vdiTunnelRelease(key: string, owner: string, inB: number, outB: number, ms: number): Promise<[number, string]>;
};

export class TicketsRepository {
  private readonly redis: Scripted;

  constructor(redis: Redis, private readonly k: Keyspace) {
    if (!('vdiTunnelClaim' in redis)) redis.defineCommand('vdiTunnelClaim', { numberOfKeys: 1, lua: CLAIM });
    if (!('vdiTunnelRelease' in redis)) redis.defineCommand('vdiTunnelRelease', { numberOfKeys: 1, lua: RELEASE });
    this.redis = redis as Scripted;
  }

  /** The ticket-encryption secret: configured, or generated once and shared by all replicas. */
  secret(configured: string): Promise<string> {
    return sharedSecret(this.redis, this.k.tunnelSecret, configured);
  }

  /** Stores a sealed ticket under its lookup hash; false if that hash exists already. */
  async put(lookup: string, sealed: string, ttlSeconds: number): Promise<boolean> {
    return (await this.redis.set(this.k.ticket(lookup), sealed, 'EX', ttlSeconds, 'NX')) === 'OK';
  }

  /** Takes a ticket: read and delete in one step, so of two racing callers one gets it. */
  async take(lookup: string): Promise<string | null> {
    return this.redis.getdel(this.k.ticket(lookup));
  }

  /** 0 when the session is gone or ended, else the claim's sequence number. */
  async claim(sessionId: string, owner: string, guacConnection: string, guacd: string): Promise<number> {
    return Number(await this.redis.vdiTunnelClaim(this.k.session(sessionId), owner, guacConnection, guacd));
  }

  async release(sessionId: string, owner: string, stats: { bytesIn: number; bytesOut: number; ms: number }): Promise<{ wasOwner: boolean; owner: string }> {
    const r = await this.redis.vdiTunnelRelease(this.k.session(sessionId), owner, Math.round(stats.bytesIn), Math.round(stats.bytesOut), Math.round(stats.ms));
    return { wasOwner: Number(r[0]) === 1, owner: String(r[1] ?? '') };
  }

  async tunnel(sessionId: string): Promise<SessionTunnel | null> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(sessionId)) return null;
    const f = await this.redis.hmget(this.k.session(sessionId), 'state', 'user', 'desktop', 'tunnelOwner', 'guacConnection', 'guacd', 'tunnelBytesIn', 'tunnelBytesOut', 'tunnelMs', 'tunnels');
    if (!f[0]) return null;
    const n = (v: string | null | undefined) => Number(v ?? 0) || 0;
    return { state: f[0], user: f[1] ?? '', desktop: f[2] ?? '', owner: f[3] ?? '', guacConnection: f[4] ?? '', guacd: f[5] ?? '', bytesIn: n(f[6]), bytesOut: n(f[7]), ms: n(f[8]), tunnels: n(f[9]) };
  }

  /** Session states by id ('' when the session is gone), in one round trip. */
  async states(ids: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (!ids.length) return out;
    const m = this.redis.multi();
    for (const id of ids) m.hget(this.k.session(id), 'state');
    const r = (await m.exec()) ?? [];
    ids.forEach((id, i) => out.set(id, String(r[i]?.[1] ?? '')));
    return out;
  }

  async publish(e: TunnelEvent): Promise<void> {
    await this.redis.publish(this.k.tunnelEvents, JSON.stringify(e));
  }

  /**
   * Listens to the replicas' tunnel events on a connection of its own (queued until Redis
   * answers, resubscribed after a reconnect); returns the closer.
   */
  subscribe(onEvent: (e: TunnelEvent) => void, onError: (err: Error) => void): () => Promise<void> {
    // (No timeouts here, and an unanswered SUBSCRIBE is sent again: it is idempotent, unlike
    // the commands the main client refuses to resend after a stall.)
    const sub = this.redis.duplicate({ enableOfflineQueue: true, commandTimeout: undefined, socketTimeout: undefined, autoResendUnfulfilledCommands: true });
    sub.on('error', onError);
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.k.tunnelEvents) return;
      try {
        const e = JSON.parse(message) as TunnelEvent;
        if (e && typeof e.session === 'string') onEvent(e);
      } catch {
        // not ours
      }
    });
    sub.subscribe(this.k.tunnelEvents).catch(onError);
    return async () => {
      try {
        await Promise.race([sub.quit(), new Promise((r) => setTimeout(r, 1000).unref())]);
      } catch {
        // already gone
      }
      sub.disconnect();
    };
  }
}
