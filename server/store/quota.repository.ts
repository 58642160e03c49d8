// Users' storage counts and upload reservations, per share and folder, shared by every broker
// replica (docs/shares.md "Quotas"). One hash per folder holds the kept count and the live
// reservations; the scripts beside this file change it atomically.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'lua');
const SCRIPTS = { vdiQuotaReserve: 'quota-reserve.lua', vdiQuotaSettle: 'quota-settle.lua', vdiQuotaRecount: 'quota-recount.lua' } as const;

/** The kept count of a folder: bytes and files, when it was last walked, and its change number. */
export interface FolderCount {
  usedBytes: number;
  files: number;
  countedAt: number;
  gen: number;
}

export interface ReserveResult {
  /** false when the count is not known yet: count the folder (recount) and ask again. */
  known: boolean;
  granted: boolean;
  /** This upload's whole reservation after the call (0 if it expired meanwhile). */
  reservedBytes: number;
  usedBytes: number;
  /** What other live uploads into the folder hold. */
  othersBytes: number;
}

type Run = (key: string, ...args: (string | number)[]) => Promise<unknown>;

export class QuotaRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace) {
    // One key per call (KEYS[1]), so these need no prelude and would run on Redis Cluster too.
    for (const [name, file] of Object.entries(SCRIPTS)) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 1, lua: readFileSync(join(DIR, file), 'utf8') });
    }
  }

  private run(name: keyof typeof SCRIPTS): Run {
    const fn = (this.redis as unknown as Record<string, Run>)[name]!;
    return fn.bind(this.redis);
  }

  /** The kept count, or null when the folder has not been counted (or the count expired). */
  async count(share: string, folder: string): Promise<FolderCount | null> {
    const [used, files, countedAt, gen] = await this.redis.hmget(this.k.quota(share, folder), 'used', 'files', 'countedAt', 'gen');
    if (used === null) return null;
    return { usedBytes: Number(used), files: Number(files ?? 0), countedAt: Number(countedAt ?? 0), gen: Number(gen ?? 0) };
  }

  /** Stores a walk's result unless the count changed since `genSeen` (see quota-recount.lua). */
  async recount(share: string, folder: string, c: { usedBytes: number; files: number; countedAt: number; genSeen: number }): Promise<{ usedBytes: number; files: number }> {
    const [usedBytes, files] = (await this.run('vdiQuotaRecount')(this.k.quota(share, folder), c.usedBytes, c.files, c.countedAt, c.genSeen)) as [number, number];
    return { usedBytes, files };
  }

  /** Reserves at least `needBytes` more (up to `wantBytes`) for upload `id` under `hardBytes`; need = want = 0 renews. */
  async reserve(share: string, folder: string, id: string, r: { needBytes: number; wantBytes: number; hardBytes: number; ttlMs: number }): Promise<ReserveResult> {
    const [status, ours, used, others] = (await this.run('vdiQuotaReserve')(this.k.quota(share, folder), id, r.needBytes, r.wantBytes, r.hardBytes, r.ttlMs)) as [number, number, number, number];
    return { known: status !== -1, granted: status === 1, reservedBytes: ours, usedBytes: used, othersBytes: others };
  }

  /** Drops reservation `id` (if any) and adds the real change to the count. */
  async settle(share: string, folder: string, id: string, delta: { bytes: number; files: number }): Promise<void> {
    await this.run('vdiQuotaSettle')(this.k.quota(share, folder), id, delta.bytes, delta.files);
  }

  /** Drops reservation `id`: the upload failed or was aborted. */
  release(share: string, folder: string, id: string): Promise<void> {
    return this.settle(share, folder, id, { bytes: 0, files: 0 });
  }

  /** Bytes held by live (unexpired) reservations of the folder. */
  async reservedBytes(share: string, folder: string): Promise<number> {
    const all = await this.redis.hgetall(this.k.quota(share, folder));
    const [sec, usec] = await this.redis.time();
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    let sum = 0;
    for (const [f, v] of Object.entries(all)) {
      if (!f.startsWith('res:')) continue;
      const [bytes, exp] = v.split(':').map(Number) as [number, number];
      if (exp > now) sum += bytes;
    }
    return sum;
  }
}
