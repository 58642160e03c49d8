import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import type { ApiKey, Role } from '../broker/model.ts';

export interface StoredApiKey extends ApiKey {
  secretHash: string;
}

function toKey(h: Record<string, string>): StoredApiKey | null {
  if (!h.id) return null;
  return {
    id: h.id,
    name: h.name ?? '',
    role: (h.role ?? 'user') as Role,
    createdBy: h.createdBy ?? '',
    createdAt: h.createdAt ?? '',
    lastUsedAt: h.lastUsedAt ?? '',
    secretHash: h.secretHash ?? '',
  };
}

export class ApiKeysRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace) {}

  async create(key: Omit<StoredApiKey, 'createdAt' | 'lastUsedAt'>): Promise<void> {
    await this.redis
      .multi()
      .hset(this.k.apiKey(key.id), { ...key, createdAt: new Date().toISOString(), lastUsedAt: '' })
      .sadd(this.k.apiKeys, key.id)
      .exec();
  }

  async get(id: string): Promise<StoredApiKey | null> {
    return toKey(await this.redis.hgetall(this.k.apiKey(id)));
  }

  async list(): Promise<StoredApiKey[]> {
    const ids = (await this.redis.smembers(this.k.apiKeys)).sort();
    const out: StoredApiKey[] = [];
    for (const id of ids) {
      const key = await this.get(id);
      if (key) out.push(key);
    }
    return out;
  }

  async touch(id: string): Promise<void> {
    await this.redis.hset(this.k.apiKey(id), 'lastUsedAt', new Date().toISOString());
  }

  async remove(id: string): Promise<boolean> {
    const [[, n]] = (await this.redis.multi().del(this.k.apiKey(id)).srem(this.k.apiKeys, id).exec()) as [[null, number]];
    return n === 1;
  }
}
