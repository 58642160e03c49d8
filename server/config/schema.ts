import { z } from 'zod';

const port = z.number().int().min(0).max(65535); // 0 = any free port (tests)
const ms = z.number().int().min(10).max(86_400_000);
const positive = z.number().int().min(1);
// Old login-throttling keys: refused by name, with where their successors live.
const removedThrottleKey = z.undefined({ error: 'removed: login throttling is configured under auth.lockout and auth.throttle (see README, "Login throttling")' }).optional();

const macPrefix = z
  .string()
  .regex(/^[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/i, 'expected three hex octets like 02:56:44')
  .refine((s) => (parseInt(s.slice(0, 2), 16) & 0b11) === 0b10, 'the first octet must be locally administered unicast (bit 1 set, bit 0 clear)');

const qemuHost = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, . _ -'),
  dataDir: z.string().min(1),
  consoleAddress: z.string().min(1).default('127.0.0.1'),
  capacity: z.strictObject({ vcpu: z.number().int().min(1), memoryMiB: z.number().int().min(64) }),
  overcommit: z.strictObject({ cpu: z.number().positive().max(64).default(1), memory: z.number().positive().max(8).default(1) }).prefault({}),
  maintenance: z.boolean().default(false),
  vncDisplayBase: z.number().int().min(0).max(59000).optional(),
});

const qemuProvider = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, . _ -'),
  kind: z.literal('qemu'),
  accel: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
  placement: z.enum(['breadth', 'depth']).default('breadth'),
  stopTimeoutMs: ms.default(30000),
  startTimeoutMs: ms.default(90000),
  hosts: z.array(qemuHost).min(1),
});

// KVM hosts driven through libvirt (server/providers/libvirt, docs/libvirt.md).
const libvirtHost = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, . _ -'),
  uri: z.string().regex(/^[a-z0-9]+(\+[a-z0-9]+)?:\/\/[^\s]*$/i, 'a libvirt URI such as qemu+ssh://user@host/system'),
  consoleAddress: z.string().min(1).max(253),
  storagePool: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'a libvirt storage pool name'),
  sshKey: z.string().min(1).optional(),
  sshKnownHosts: z.string().min(1).optional(),
  sshVerifyHostKey: z.boolean().default(true),
  tlsDir: z.string().min(1).optional(),
  overcommit: z.strictObject({ cpu: z.number().positive().max(64).default(1), memory: z.number().positive().max(8).default(1) }).prefault({}),
  maintenance: z.boolean().default(false),
  accel: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
  network: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/).default('default'),
  sharedStorage: z.boolean().default(false),
  migrationUri: z.string().min(1).optional(),
  migrationAddress: z.string().min(1).max(260).optional(),
  serialSocketDir: z.string().min(1).optional(),
});

const libvirtProvider = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, . _ -'),
  kind: z.literal('libvirt'),
  placement: z.enum(['breadth', 'depth']).default('breadth'),
  stopTimeoutMs: ms.default(30000),
  startTimeoutMs: ms.default(90000),
  callTimeoutMs: ms.default(30000),
  migrateTimeoutMs: ms.default(600000),
  hosts: z.array(libvirtHost).min(1),
});

export type LibvirtProviderConfig = z.infer<typeof libvirtProvider>;

// Existing machines the broker brokers but does not create (server/providers/manual); the
// machines themselves are added through the API / CLI and kept in Redis.
const manualProvider = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, . _ -'),
  kind: z.literal('manual'),
  healthIntervalMs: ms.default(15000),
  probeTimeoutMs: ms.default(3000),
  startTimeoutMs: ms.default(120000),
  wakeAddress: z.string().min(1).max(253).default('255.255.255.255'),
});

export type ManualProviderConfig = z.infer<typeof manualProvider>;

const quota = z
  .strictObject({ softBytes: z.number().int().min(0), hardBytes: z.number().int().min(0) })
  .refine((q) => q.softBytes <= q.hardBytes, { message: 'softBytes must not exceed hardBytes', path: ['softBytes'] });

const share = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, . _ -'),
  root: z.string().min(1),
  unc: z.string().max(400).default(''),
  guacdPath: z.string().max(1000).default(''),
  createRoot: z.boolean().default(false),
  quota: quota.optional(),
});

export type ShareConfig = z.infer<typeof share>;

export type QemuProviderConfig = z.infer<typeof qemuProvider>;

export const configSchema = z.strictObject({
  server: z.strictObject({
    host: z.string().min(1),
    port,
    publicUrl: z.union([z.literal(''), z.url()]),
    trustProxy: z.union([z.boolean(), z.number().int().min(0), z.string(), z.array(z.string())]),
    bodyLimitBytes: z.number().int().min(1024).max(16 * 1024 * 1024),
    shutdownGraceSeconds: z.number().int().min(0).max(600),
  }),
  redis: z.strictObject({
    url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL'),
    password: z.string(),
    keyPrefix: z.string().min(1).max(64).regex(/^[A-Za-z0-9:_.-]+$/, 'letters, digits and : _ . - only'),
    commandTimeoutMs: ms,
    autoStart: z.boolean(),
  }),
  session: z.strictObject({
    secret: z.union([z.literal(''), z.string().min(32, 'at least 32 characters')]),
    cookieName: z.string().regex(/^[A-Za-z0-9._-]+$/),
    maxAgeSeconds: z.number().int().min(60).max(30 * 86400),
    secureCookies: z.enum(['auto', 'true', 'false']).or(z.boolean()),
  }),
  auth: z.strictObject({
    passwordMinLength: z.number().int().min(8).max(128),
    argon2MemoryKib: z.number().int().min(1024).max(4 * 1024 * 1024),
    argon2TimeCost: z.number().int().min(1).max(20),
    argon2Parallelism: z.number().int().min(1).max(16),
    lockout: z
      .strictObject({
        mode: z.enum(['progressive', 'hard']),
        freeFailures: z.number().int().min(1).max(1000),
        baseDelaySeconds: z.number().int().min(1).max(3600),
        maxDelaySeconds: z.number().int().min(1).max(3600),
        threshold: z.number().int().min(1).max(1000),
        durationSeconds: z.number().int().min(1).max(30 * 86400),
        knownAddressDays: z.number().int().min(0).max(365),
      })
      .refine((l) => l.maxDelaySeconds >= l.baseDelaySeconds, { message: 'must be at least auth.lockout.baseDelaySeconds', path: ['maxDelaySeconds'] }),
    throttle: z.strictObject({
      windowSeconds: z.number().int().min(1).max(7 * 86400),
      pairFailures: z.number().int().min(1).max(10_000),
      pairBlockSeconds: z.number().int().min(1).max(30 * 86400),
      sprayAccounts: z.number().int().min(2).max(100_000),
      sprayBlockSeconds: z.number().int().min(1).max(30 * 86400),
    }),
    // Replaced by auth.lockout / auth.throttle (a hard per-account lock by default let anyone lock anyone out).
    maxFailuresPerAccount: removedThrottleKey,
    accountLockoutSeconds: removedThrottleKey,
    maxFailuresPerAddress: removedThrottleKey,
    addressLockoutSeconds: removedThrottleKey,
    failureWindowSeconds: removedThrottleKey,
  }),
  desktops: z.strictObject({
    macPrefix,
    macPoolSize: z.number().int().min(1).max(16_777_216),
    deletedRetentionDays: z.number().int().min(0).max(365),
  }),
  jobs: z.strictObject({
    enabled: z.boolean(),
    leaseTtlMs: ms,
    poolSizingIntervalMs: ms,
    lifecycleIntervalMs: ms,
    sessionTimeoutsIntervalMs: ms,
    inventoryIntervalMs: ms,
    drainIntervalMs: ms,
    maxConcurrentOperations: z.number().int().min(1).max(256),
    maxFailures: z.number().int().min(1).max(100),
    backoffBaseMs: ms,
    backoffMaxMs: ms,
    operationTimeoutMs: ms,
  }),
  providers: z.array(z.discriminatedUnion('kind', [qemuProvider, libvirtProvider, manualProvider])).refine((a) => new Set(a.map((p) => p.name)).size === a.length, 'provider names must be unique'),
  images: z.strictObject({ dir: z.string().min(1) }),
  guacd: z.strictObject({
    host: z.string().max(253),
    port,
  }),
  gateway: z.strictObject({
    listen: z.enum(['unix', 'tcp']),
    socketDir: z.string(),
    host: z.string().min(1),
    port,
  }),
  tunnel: z.strictObject({
    ticketTtlSeconds: z.number().int().min(5).max(60),
    secret: z.union([z.literal(''), z.string().min(32, 'at least 32 characters')]),
    allowedOrigins: z.array(
      z.url().refine((u) => /^https?:$/.test(new URL(u).protocol) && new URL(u).origin === u.replace(/\/$/, ''), 'an origin: http(s)://host[:port], no path'),
    ),
  }),
  shares: z.strictObject({
    list: z.array(share).min(1).refine((a) => new Set(a.map((s) => s.name)).size === a.length, 'share names must be unique'),
    quota,
    maxUploadBytes: z.number().int().min(1),
    healthTimeoutMs: ms,
    healthCacheMs: z.number().int().min(0).max(600_000),
    usageRecountMs: ms,
    staleUploadMs: z.number().int().min(60_000).max(86_400_000),
    rdpDriveName: z.string().min(1).max(64).regex(/^[^\\/:*?"<>|\u0000-\u001f]+$/, 'a plain drive name'),
  }),
  audit: z.strictObject({
    maxEntries: z.number().int().min(1000),
  }),
  logging: z.strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  }),
});

export type Config = z.infer<typeof configSchema>;
