import type { ReplicaBarrier } from './replica-barrier.ts';
import type { Redis } from 'ioredis';
import { keyspace, type Keyspace } from './keys.ts';
import { sharedSecret } from './secrets.ts';
import { defineScripts } from './scripts.ts';
import { UsersRepository } from './users.repository.ts';
import { PoolsRepository } from './pools.repository.ts';
import { DesktopsRepository, type MacRange } from './desktops.repository.ts';
import { SessionsRepository } from './sessions.repository.ts';
import { ApiKeysRepository } from './apikeys.repository.ts';
import { AuditRepository } from './audit.repository.ts';
import { LeasesRepository } from './leases.repository.ts';
import { TicketsRepository } from './tickets.repository.ts';
import { ImagesRepository } from './images.repository.ts';
import { QuotaRepository } from './quota.repository.ts';
import { DrainsRepository } from './drains.repository.ts';
import { MachinesRepository } from './machines.repository.ts';
import { MfaRepository } from './mfa.repository.ts';
import { DevicesRepository } from './devices.repository.ts';
import { SessionStatsRepository } from './session-stats.repository.ts';
import { RecordingsRepository } from './recordings.repository.ts';

export { createRedis, connectRedis, redisTarget, type RedisClient, type RedisTarget } from './redis.ts';
export { derivedKey } from './secrets.ts';
export { AgentBus } from './agent-bus.ts';
export { keyspace, type Keyspace } from './keys.ts';
export type { StoredUser } from './users.repository.ts';
export type { StoredApiKey } from './apikeys.repository.ts';
export type { AuditEntry, AuditFilter } from './audit.repository.ts';
export type { Image, ImageVersion } from './images.repository.ts';
export type { PoolCounts, PoolAtRevision } from './pools.repository.ts';
export type { QuotaRepository, FolderCount, ReserveResult } from './quota.repository.ts';
export type { Drain, DrainSummary, DrainDesktop, DrainState, DrainProgress } from './drains.repository.ts';
export { newDrainDesktop } from './drains.repository.ts';
export { DevicesRepository, type StoredDevice, type StoredEnrolmentCode, type DeviceState, type EnrolResult } from './devices.repository.ts';
export { MfaRepository, type StoredPasskey, type StoredChallenge, type FactorSummary } from './mfa.repository.ts';
export { MachinesRepository, type Machine, type MachineHealth, type MachineAddResult } from './machines.repository.ts';
export { SessionStatsRepository, type SessionStats } from './session-stats.repository.ts';
export { RecordingsRepository, type Recording, type RecordingFilter } from './recordings.repository.ts';
export type { TransitionResult } from './desktops.repository.ts';
export type { AssignResult } from './sessions.repository.ts';
export { ReplicaBarrier } from './replica-barrier.ts';
export type { TicketsRepository, SessionTunnel, TunnelEvent } from './tickets.repository.ts';
export type { UsersRepository, PoolsRepository, DesktopsRepository, SessionsRepository, ApiKeysRepository, AuditRepository, LeasesRepository, ImagesRepository, DrainsRepository };

export interface StoreOptions {
  keyPrefix: string;
  macs: MacRange;
  deletedRetentionSeconds: number;
  auditMaxEntries: number;
  /** Redis WAIT after an assignment (on its own connection): acknowledged only once replicas hold it (docs/redis-ha.md). */
  replicaBarrier?: ReplicaBarrier;
}

/** Everything the broker keeps in Redis, one repository per entity. */
export class Store {
  readonly keys: Keyspace;
  readonly users: UsersRepository;
  readonly pools: PoolsRepository;
  readonly desktops: DesktopsRepository;
  readonly sessions: SessionsRepository;
  readonly apiKeys: ApiKeysRepository;
  readonly audit: AuditRepository;
  readonly leases: LeasesRepository;
  readonly tickets: TicketsRepository;
  readonly images: ImagesRepository;
  readonly quota: QuotaRepository;
  readonly drains: DrainsRepository;
  readonly machines: MachinesRepository;
  readonly mfa: MfaRepository;
  readonly devices: DevicesRepository;
  readonly sessionStats: SessionStatsRepository;
  readonly recordings: RecordingsRepository;

  constructor(readonly redis: Redis, opts: StoreOptions) {
    defineScripts(redis);
    this.keys = keyspace(opts.keyPrefix);
    this.users = new UsersRepository(redis, this.keys);
    this.pools = new PoolsRepository(redis, this.keys);
    this.desktops = new DesktopsRepository(redis, this.keys, opts.macs, opts.deletedRetentionSeconds);
    this.sessions = new SessionsRepository(redis, this.keys, opts.macs, opts.replicaBarrier);
    this.apiKeys = new ApiKeysRepository(redis, this.keys);
    this.audit = new AuditRepository(redis, this.keys, opts.auditMaxEntries);
    this.leases = new LeasesRepository(redis, this.keys);
    this.tickets = new TicketsRepository(redis, this.keys);
    this.images = new ImagesRepository(redis, this.keys);
    this.quota = new QuotaRepository(redis, this.keys);
    this.drains = new DrainsRepository(redis, this.keys);
    this.machines = new MachinesRepository(redis, this.keys);
    this.mfa = new MfaRepository(redis, this.keys);
    this.devices = new DevicesRepository(redis, this.keys);
    this.sessionStats = new SessionStatsRepository(redis, this.keys);
    this.recordings = new RecordingsRepository(redis, this.keys);
  }

  get available(): boolean {
    return this.redis.status === 'ready';
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  /** The cookie-signing secret: configured, or generated once and shared by all replicas. */
  sessionSecret(configured: string): Promise<string> {
    return sharedSecret(this.redis, this.keys.sessionSecret, configured);
  }
}
export { sampleRedisLatency, type RedisLatencySink } from './redis-latency.ts';
