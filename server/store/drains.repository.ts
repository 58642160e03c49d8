import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import { runScript } from './scripts.ts';

export type DrainState = 'running' | 'done' | 'failed' | 'cancelled';
/** pending: still to move (maybe waiting for its next attempt); moving: a migration runs now. */
export type DrainDesktopStatus = 'pending' | 'moving' | 'moved' | 'failed' | 'gone';

/** One desktop's part in a drain. */
export interface DrainDesktop {
  id: string;
  name: string;
  status: DrainDesktopStatus;
  attempts: number;
  /** When the next attempt may run (ms), after a failed one. */
  nextAttemptAt: number;
  lastError: string;
  /** The host it moved to (or is moving to). */
  to: string;
  movedAt: number;
}

export interface DrainProgress {
  total: number;
  moved: number;
  failed: number;
  pending: number;
}

/** A host's drain without its desktop list (what the host list shows). */
export interface DrainSummary {
  id: string;
  provider: string;
  host: string;
  state: DrainState;
  requestedBy: string;
  requestedAt: number;
  updatedAt: number;
  finishedAt: number;
  /** Why it failed or was cancelled. */
  reason: string;
  progress: DrainProgress;
}

export interface Drain extends DrainSummary {
  desktops: DrainDesktop[];
}

export function newDrainDesktop(id: string, name: string): DrainDesktop {
  return { id, name, status: 'pending', attempts: 0, nextAttemptAt: 0, lastError: '', to: '', movedAt: 0 };
}

function progressOf(ds: DrainDesktop[]): DrainProgress {
  const n = (s: DrainDesktopStatus[]) => ds.filter((d) => s.includes(d.status)).length;
  return { total: ds.filter((d) => d.status !== 'gone').length, moved: n(['moved']), failed: n(['failed']), pending: n(['pending', 'moving']) };
}

/**
 * Host drains: the desired state "this host should be empty", with per-desktop progress. One
 * record per provider/host (the latest drain); every write goes through drain.lua.
 */
export class DrainsRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace) {}

  /** Starts a drain unless one is running; either way returns the running drain. */
  async start(provider: string, host: string, requestedBy: string, desktops: { id: string; name: string }[], now: number): Promise<{ created: boolean; drain: Drain }> {
    const pairs = desktops.flatMap((d) => [d.id, JSON.stringify(newDrainDesktop(d.id, d.name))]);
    const [created] = (await runScript(this.redis, 'vdiDrain', [this.k.prefix, 'start', `${provider}/${host}`, randomUUID(), now, requestedBy, ...pairs])) as [number, string];
    return { created: created === 1, drain: (await this.get(provider, host))! };
  }

  /** Ends the running drain (of that id, or whichever runs when id is ''); false if none ran. */
  async finish(provider: string, host: string, id: string, state: Exclude<DrainState, 'running'>, reason: string, now: number): Promise<boolean> {
    return (await runScript(this.redis, 'vdiDrain', [this.k.prefix, 'finish', `${provider}/${host}`, id, now, state, reason.slice(0, 500)])) === 1;
  }

  /** Records one desktop's progress in drain `id` (ignored if that drain was replaced). */
  async saveDesktop(provider: string, host: string, id: string, d: DrainDesktop, now: number): Promise<boolean> {
    return (await runScript(this.redis, 'vdiDrain', [this.k.prefix, 'desktop', `${provider}/${host}`, id, now, d.id, JSON.stringify({ ...d, lastError: d.lastError.slice(0, 500) })])) === 1;
  }

  async summary(provider: string, host: string): Promise<DrainSummary | null> {
    const d = await this.get(provider, host);
    if (!d) return null;
    const { desktops: _, ...rest } = d;
    return rest;
  }

  async get(provider: string, host: string): Promise<Drain | null> {
    const key = `${provider}/${host}`;
    const [rec, ds] = (await this.redis.multi().hgetall(this.k.drain(key)).hgetall(this.k.drainDesktops(key)).exec()) ?? [];
    const h = (rec?.[1] ?? {}) as Record<string, string>;
    if (!h.id) return null;
    const desktops = Object.values((ds?.[1] ?? {}) as Record<string, string>).map((v) => JSON.parse(v) as DrainDesktop);
    desktops.sort((a, b) => a.name.localeCompare(b.name));
    return {
      id: h.id, provider: h.provider ?? provider, host: h.host ?? host, state: h.state as DrainState, requestedBy: h.requestedBy ?? '',
      requestedAt: Number(h.requestedAt ?? 0), updatedAt: Number(h.updatedAt ?? 0), finishedAt: Number(h.finishedAt ?? 0), reason: h.reason ?? '',
      progress: progressOf(desktops), desktops,
    };
  }

  /** Every host with a drain record ("provider/host"). */
  async hosts(): Promise<string[]> {
    return this.redis.smembers(this.k.drains);
  }

  /** The drains that still run. */
  async running(): Promise<Drain[]> {
    const out: Drain[] = [];
    for (const key of await this.hosts()) {
      const i = key.indexOf('/');
      const d = await this.get(key.slice(0, i), key.slice(i + 1));
      if (d?.state === 'running') out.push(d);
    }
    return out;
  }
}
