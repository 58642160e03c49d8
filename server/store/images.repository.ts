import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';

export interface ImageVersion {
  version: number;
  /** Directory (or file) of this version on the broker and hypervisor hosts. */
  path: string;
  format: string;
  checksum: string;
  createdAt: string;
  createdBy: string;
  /** The guest agent this version runs (manifest.json "agent"; docs/agent.md); absent: the configured default. */
  agent?: 'vdi' | 'qga' | 'none';
  /** With agent none: ready when the console answers plus this, ms (manifest.json "bootGraceMs"). */
  bootGraceMs?: number;
}

export interface Image {
  name: string;
  displayName: string;
  /** Published version new desktops are built from; 0 = none yet. */
  current: number;
  createdAt: string;
  updatedAt: string;
}

/** The golden-image registry: images and their versions. */
export class ImagesRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace) {}

  async create(name: string, displayName: string): Promise<boolean> {
    const ok = await this.redis.hsetnx(this.k.image(name), 'name', name);
    if (!ok) return false;
    const now = new Date().toISOString();
    await this.redis.multi().hset(this.k.image(name), { displayName, current: '0', createdAt: now, updatedAt: now }).sadd(this.k.images, name).exec();
    return true;
  }

  async get(name: string): Promise<Image | null> {
    const h = await this.redis.hgetall(this.k.image(name));
    if (!h.name) return null;
    return { name: h.name, displayName: h.displayName ?? h.name, current: Number(h.current ?? 0), createdAt: h.createdAt ?? '', updatedAt: h.updatedAt ?? '' };
  }

  async list(): Promise<Image[]> {
    const out: Image[] = [];
    for (const n of (await this.redis.smembers(this.k.images)).sort()) {
      const i = await this.get(n);
      if (i) out.push(i);
    }
    return out;
  }

  async versions(name: string): Promise<ImageVersion[]> {
    const h = await this.redis.hgetall(this.k.imageVersions(name));
    return Object.values(h)
      .map((v) => JSON.parse(v) as ImageVersion)
      .sort((a, b) => a.version - b.version);
  }

  async version(name: string, version: number): Promise<ImageVersion | null> {
    const v = await this.redis.hget(this.k.imageVersions(name), String(version));
    return v ? (JSON.parse(v) as ImageVersion) : null;
  }

  /** Adds the next version number; returns it. */
  async addVersion(name: string, v: Omit<ImageVersion, 'version'>): Promise<number> {
    for (;;) {
      const existing = await this.redis.hkeys(this.k.imageVersions(name));
      const next = existing.reduce((m, x) => Math.max(m, Number(x)), 0) + 1;
      if (await this.redis.hsetnx(this.k.imageVersions(name), String(next), JSON.stringify({ ...v, version: next }))) return next;
    }
  }

  async publish(name: string, version: number): Promise<void> {
    await this.redis.hset(this.k.image(name), { current: String(version), updatedAt: new Date().toISOString() });
  }

  async remove(name: string): Promise<void> {
    await this.redis.multi().del(this.k.image(name), this.k.imageVersions(name)).srem(this.k.images, name).exec();
  }

  // host maintenance flags (kept here with the other hypervisor-side registry data)

  async hostMaintenance(): Promise<Set<string>> {
    return new Set(Object.keys(await this.redis.hgetall(this.k.hostMaintenance)));
  }

  async setHostMaintenance(provider: string, host: string, on: boolean): Promise<void> {
    if (on) await this.redis.hset(this.k.hostMaintenance, `${provider}/${host}`, '1');
    else await this.redis.hdel(this.k.hostMaintenance, `${provider}/${host}`);
  }
}
