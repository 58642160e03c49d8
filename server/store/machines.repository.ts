// Machines of manual pools: existing PCs, RDS hosts or hand-made VMs the broker brokers but does
// not create. One hash per machine, keyed by the id of its desktop. Credentials are stored only
// sealed (server/providers/manual/credentials.ts): this repository never sees them in clear.
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import { runScript } from './scripts.ts';

export type MachineHealth = 'unknown' | 'answering' | 'silent';

export interface Machine {
  id: string;
  provider: string;
  pool: string;
  name: string;
  protocol: 'vnc' | 'rdp';
  address: string;
  port: number;
  /** RDP security mode as guacd names it (any, nla, nla-ext, tls, vmconnect, rdp). */
  security: string;
  ignoreCert: boolean;
  domain: string;
  /** Wake-on-LAN MAC ('' = none). */
  mac: string;
  /** A guest agent runs on the machine (server/agent, when wired). */
  agent: boolean;
  /** AES-256-GCM sealed {username, password}; '' = none. */
  sealed: string;
  hasUsername: boolean;
  hasPassword: boolean;
  createdAt: number;
  updatedAt: number;
  health: MachineHealth;
  checkedAt: number;
  healthError: string;
}

export type MachineAddResult = { ok: true } | { ok: false; code: 'not_found' | 'validation_failed' | 'already_exists'; field: string };

const num = (v: string | undefined) => (v ? Number(v) : 0);

function toMachine(h: Record<string, string>): Machine | null {
  if (!h.id) return null;
  return {
    id: h.id,
    provider: h.provider ?? '',
    pool: h.pool ?? '',
    name: h.name ?? '',
    protocol: h.protocol === 'rdp' ? 'rdp' : 'vnc',
    address: h.address ?? '',
    port: num(h.port),
    security: h.security ?? 'any',
    ignoreCert: h.ignoreCert === '1',
    domain: h.domain ?? '',
    mac: h.mac ?? '',
    agent: h.agent === '1',
    sealed: h.sealed ?? '',
    hasUsername: h.hasUsername === '1',
    hasPassword: h.hasPassword === '1',
    createdAt: num(h.createdAt),
    updatedAt: num(h.updatedAt),
    health: (h.health as MachineHealth | undefined) ?? 'unknown',
    checkedAt: num(h.checkedAt),
    healthError: h.healthError ?? '',
  };
}

/** Fields as Redis stores them (booleans as 1/0). */
function fields(m: Partial<Machine>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) {
    if (v === undefined) continue;
    out[k] = typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
  }
  return out;
}

export class MachinesRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace) {}

  async get(id: string): Promise<Machine | null> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) return null;
    return toMachine(await this.redis.hgetall(this.k.machine(id)));
  }

  async list(filter: { provider?: string; pool?: string } = {}): Promise<Machine[]> {
    const ids = await this.redis.smembers(this.k.machines);
    const out: Machine[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const m = this.redis.multi();
      for (const id of ids.slice(i, i + 500)) m.hgetall(this.k.machine(id));
      for (const [, h] of (await m.exec()) ?? []) {
        const x = toMachine(h as Record<string, string>);
        if (x && (!filter.provider || x.provider === filter.provider) && (!filter.pool || x.pool === filter.pool)) out.push(x);
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The machine and its desktop (state provisioning) in one step; see lua/machine-add.lua. */
  async add(m: Machine, now: number): Promise<MachineAddResult> {
    const { id, pool, provider, name, mac, address } = m;
    const pairs = Object.entries(fields(m)).flat();
    const r = (await runScript(this.redis, 'vdiMachineAdd', [this.k.prefix, id, pool, provider, now, name, mac, address, ...pairs])) as string[];
    if (r[0] === 'ok') return { ok: true };
    return { ok: false, code: r[1] as 'not_found' | 'validation_failed' | 'already_exists', field: r[2] ?? '' };
  }

  /** Changes settings of an existing machine (never its id, pool, provider or name). */
  async update(id: string, patch: Partial<Omit<Machine, 'id' | 'pool' | 'provider' | 'name'>>): Promise<boolean> {
    // Only on an existing record: HSET on a removed machine would resurrect a stub.
    if ((await this.redis.exists(this.k.machine(id))) !== 1) return false;
    await this.redis.hset(this.k.machine(id), fields(patch));
    return true;
  }

  /** Moves a Wake-on-LAN MAC from one value to another in the broker-wide MAC map; false if taken. */
  async claimMac(id: string, from: string, to: string): Promise<boolean> {
    if (from === to) return true;
    if (to && (await this.redis.hsetnx(this.k.macs, to, id)) === 0) return false;
    if (from && (await this.redis.hget(this.k.macs, from)) === id) await this.redis.hdel(this.k.macs, from);
    await this.redis.hset(this.k.desktop(id), 'mac', to);
    return true;
  }

  async setHealth(id: string, health: MachineHealth, checkedAt: number, error = ''): Promise<void> {
    await this.update(id, { health, checkedAt, healthError: error.slice(0, 300) });
  }

  async remove(id: string): Promise<void> {
    await this.redis.multi().del(this.k.machine(id)).srem(this.k.machines, id).exec();
  }
}
