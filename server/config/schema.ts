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
  // Folder on the host for the guest agent sockets (<id>.agent); default libvirt's channel folder.
  agentSocketDir: z.string().min(1).optional(),
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

// A broker-run smbd over the share root (embedded default, docs/shares.md): the guest mounts
// the user's folder over SMB at logon with a credential the broker rotates at every logon.
export const shareSmb = z.strictObject({
  // Start (and stop) Debian's smbd with a private config in `dir`; users are not system accounts.
  managed: z.boolean().default(false),
  // Where smbd listens on the broker host (loopback; guests reach it through the QEMU forward).
  address: z.string().min(1).max(100).regex(/^[0-9a-fA-F.:]+$/, 'an IP address').default('127.0.0.1'),
  port: z.number().int().min(1).max(65535).default(4450),
  // Private directory: smb.conf, passdb, passwd/group for libnss_wrapper, pid file, logs (0700).
  dir: z.string().min(1).default('data/samba'),
  // How QEMU guests reach smbd: QEMU forwards guestHost:guestPort to address:port (guestForwards).
  guestHost: z.string().min(1).max(100).regex(/^[0-9.]+$/, 'an IPv4 address').default('10.0.2.100'),
  guestPort: z.number().int().min(1).max(65535).default(445),
  startTimeoutMs: z.number().int().min(1000).max(120_000).default(20_000),
  // How long a logon waits for the guest agent to say the folder is mounted.
  logonTimeoutMs: z.number().int().min(1000).max(300_000).default(20_000),
});

const share = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, . _ -'),
  root: z.string().min(1),
  unc: z.string().max(400).default(''),
  guacdPath: z.string().max(1000).default(''),
  createRoot: z.boolean().default(false),
  quota: quota.optional(),
  smb: shareSmb.optional(),
});

export type ShareConfig = z.infer<typeof share>;

export type QemuProviderConfig = z.infer<typeof qemuProvider>;

// A directory login (server/auth/authenticators/ldap, docs/authentication.md): Active Directory
// or OpenLDAP, a service-account search then a bind as the user.
const ldapFilterTemplate = z.string().min(3).max(2000).regex(/^\(.*\)$/s, 'an LDAP filter in parentheses');
const ldapAuthenticator = z.strictObject({
  kind: z.literal('ldap'),
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, . _ -').refine((n) => n !== 'local', '"local" is the broker\'s own accounts'),
  label: z.string().min(1).max(80),
  // `user@domain` logins with these domains come here, the domain removed (also the AD UPN suffix).
  domains: z.array(z.string().min(1).max(253).regex(/^[a-z0-9.-]+$/, 'a lower-case domain')).max(20).default([]),
  // activeDirectory or openldap: picks the defaults of the filters and attributes below.
  directory: z.enum(['activeDirectory', 'openldap']),
  // Servers in order of preference; the next is tried when one does not answer (failover).
  urls: z.array(z.string().regex(/^ldaps?:\/\/[^\s/]+\/?$/, 'ldap://host[:port] or ldaps://host[:port]')).min(1).max(8),
  // Upgrade ldap:// connections with StartTLS (refused if the server cannot).
  startTls: z.boolean().default(false),
  // PEM file of the CA(s) that signed the servers' certificates (ldaps:// and StartTLS); default: the system's.
  caFile: z.string().min(1).optional(),
  // Connect, bind and search timeout per server, in milliseconds.
  timeoutMs: z.number().int().min(100).max(60_000).default(5000),
  // Most directory connections open at once (logins beyond wait their turn).
  maxConnections: z.number().int().min(1).max(64).default(4),
  // The service account that searches for users and groups; empty = anonymous search.
  bindDn: z.string().max(1000).default(''),
  // Its password, or a file holding it (bindPasswordFile wins); never logged or shown.
  bindPassword: z.string().max(1000).default(''),
  bindPasswordFile: z.string().min(1).optional(),
  // Where users are searched (subtree).
  baseDn: z.string().min(1).max(1000),
  // Filter finding the user: {username} is the broker user id, {login} what was typed (user@domain),
  // both escaped (RFC 4515). Default AD: sAMAccountName or userPrincipalName; OpenLDAP: uid.
  userFilter: ldapFilterTemplate.optional(),
  // Attribute holding the user name (default sAMAccountName / uid).
  usernameAttribute: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,62}$/).optional(),
  displayNameAttribute: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,62}$/).default('displayName'),
  emailAttribute: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,62}$/).default('mail'),
  // A filter that marks a found user as disabled (for example (employeeType=left)); AD's
  // userAccountControl, accountExpires and OpenLDAP's pwdAccountLockedTime are always checked.
  disabledFilter: ldapFilterTemplate.optional(),
  groups: z
    .strictObject({
      // Where groups are searched (default baseDn).
      baseDn: z.string().min(1).max(1000).optional(),
      // Filter of the groups a user is in: {dn} the user's DN, {username} the id. Default AD: nested
      // through LDAP_MATCHING_RULE_IN_CHAIN; OpenLDAP: groupOfNames, groupOfUniqueNames, posixGroup.
      filter: ldapFilterTemplate.optional(),
      // Group name attribute.
      nameAttribute: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,62}$/).default('cn'),
      // Nesting the broker expands itself (groupOfNames in groupOfNames); 0 = none (AD's default
      // filter already returns nested groups).
      nestedDepth: z.number().int().min(0).max(10).optional(),
      // Directory group name → broker group id; unmapped names become ids by lower-casing.
      map: z.record(z.string().min(1).max(256), z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/)).default({}),
      // Only groups named in `map` count.
      onlyMapped: z.boolean().default(false),
    })
    .prefault({}),
  // A logged-in user's groups are re-read when older than this (seconds); 0 = only at login.
  groupCacheSeconds: z.number().int().min(0).max(86_400).default(300),
});

export type LdapAuthenticatorConfig = z.infer<typeof ldapAuthenticator>;

// Single sign-on with an OpenID Connect provider (server/auth/authenticators/oidc.authenticator.ts,
// docs/authentication.md "OpenID Connect"). http is allowed only for a loopback issuer (tests).
const loopbackHost = /^(127(?:\.\d{1,3}){3}|\[::1\]|localhost)$/i;
/** Addresses that mean "every interface" (no machine can be reached by them). */
const wildcardHost = /^(0\.0\.0\.0|::|\[::\]|0:0:0:0:0:0:0:0|\*)$/;
const oidcUrl = z.url().refine((u) => { const x = new URL(u); return x.protocol === 'https:' || (x.protocol === 'http:' && loopbackHost.test(x.hostname)); }, 'an https URL (http only on 127.0.0.1, [::1] or localhost)');
const claimPath = z.string().min(1).max(200).regex(/^[A-Za-z0-9_:/.#-]+$/, 'a claim name or a dotted path like realm_access.roles');
const oidcAuthenticator = z
  .strictObject({
    kind: z.literal('oidc'),
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, . _ -').refine((n) => n !== 'local', '"local" is the broker\'s own accounts'),
    // The login page's button text.
    label: z.string().min(1).max(80),
    // The IdP's issuer URL; its /.well-known/openid-configuration is read at the first login (and again while it fails).
    issuer: oidcUrl,
    clientId: z.string().min(1).max(255),
    // The client secret inline (prefer one of the two below); empty with neither = a public client (PKCE only).
    clientSecret: z.string().max(4096).default(''),
    // Name of an environment variable holding the client secret (read at startup).
    clientSecretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name').optional(),
    // A file holding the client secret (read at startup).
    clientSecretFile: z.string().min(1).optional(),
    // Where the IdP sends the browser back; default <server.publicUrl>/api/v1/auth/oidc/<name>/callback.
    redirectUri: z.union([z.literal(''), oidcUrl]).default(''),
    // Where the IdP sends the browser after logout; default <server.publicUrl>/.
    postLogoutRedirectUri: z.union([z.literal(''), oidcUrl]).default(''),
    scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,100}$/, 'a scope token')).min(1).max(20).default(['openid', 'profile', 'email']).refine((s) => s.includes('openid'), 'must include openid'),
    // The claim naming the broker user (normalised like every user name; refused if it cannot be one).
    usernameClaim: claimPath.default('preferred_username'),
    // The claim holding the user's groups or roles: a name, or a dotted path (realm_access.roles).
    groupsClaim: claimPath.default('groups'),
    // IdP group name → broker group id; unmapped names become ids by lower-casing (dropped if they cannot be one).
    groupMap: z.record(z.string().min(1).max(256), z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/)).default({}),
    // Only groups named in groupMap count.
    onlyMappedGroups: z.boolean().default(false),
    // Also read the userinfo endpoint (claims the id_token lacks); the id_token's claims win.
    userinfo: z.boolean().default(true),
    // Seconds of clock difference tolerated when checking the id_token's exp, iat and nbf.
    clockToleranceSeconds: z.number().int().min(0).max(600).default(30),
    // Timeout of each call to the IdP (discovery, token, userinfo), in seconds.
    timeoutSeconds: z.number().int().min(1).max(120).default(10),
    // How long a started login may stay at the IdP before its state expires, in seconds.
    loginTimeoutSeconds: z.number().int().min(30).max(3600).default(600),
    // Pass the IdP's amr/acr to the MFA policy, which may accept them as the second factor.
    trustIdpMfa: z.boolean().default(false),
    // Groups come from the IdP at login only: 0 = trusted until the next login.
    groupCacheSeconds: z.number().int().min(0).max(86_400).default(0),
  })
  .refine((a) => [a.clientSecret !== '', a.clientSecretEnv !== undefined, a.clientSecretFile !== undefined].filter(Boolean).length <= 1, {
    message: 'set at most one of clientSecret, clientSecretEnv, clientSecretFile',
    path: ['clientSecret'],
  });

export type OidcAuthenticatorConfig = z.infer<typeof oidcAuthenticator>;

// Further kinds join this union.
const authenticatorConfig = z.discriminatedUnion('kind', [ldapAuthenticator, oidcAuthenticator]);

export type AuthenticatorConfig = z.infer<typeof authenticatorConfig>;

export const configSchema = z.strictObject({
  server: z.strictObject({
    host: z.string().min(1),
    port,
    publicUrl: z.union([z.literal(''), z.url()]),
    trustProxy: z.union([z.boolean(), z.number().int().min(0), z.string(), z.array(z.string())]),
    bodyLimitBytes: z.number().int().min(1024).max(16 * 1024 * 1024),
    shutdownGraceSeconds: z.number().int().min(0).max(600),
    drainSeconds: z.number().min(0).max(120),
  }),
  redis: z.strictObject({
    url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL'),
    password: z.string(),
    keyPrefix: z.string().min(1).max(64).regex(/^[A-Za-z0-9:_.-]+$/, 'letters, digits and : _ . - only'),
    commandTimeoutMs: ms,
    autoStart: z.boolean(),
    // Redis Sentinel (docs/redis-ha.md): when listed, the sentinels name the primary and `url`
    // gives only the database number (and rediss:// for TLS).
    sentinels: z.array(z.strictObject({ host: z.string().min(1).max(253), port })).max(16),
    name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits and . _ - only'),
    sentinelPassword: z.string(),
    // Assignments are acknowledged only once this many replicas hold them (Redis WAIT), so a
    // failover cannot lose a desktop a user was told is theirs; 0 = do not wait.
    waitReplicas: z.number().int().min(0).max(5),
    waitTimeoutMs: ms,
    tls: z.strictObject({
      // PEM file of the CA that signed the Redis (and Sentinel) certificates; empty = system CAs.
      caFile: z.string(),
      rejectUnauthorized: z.boolean(),
    }),
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
    // The broker's own accounts (docs/authentication.md).
    local: z.strictObject({ enabled: z.boolean().default(true), label: z.string().min(1).max(80).default('Local account') }).prefault({}),
    // Directories and identity providers users log in with, besides local accounts.
    authenticators: z.array(authenticatorConfig).max(20).default([]).refine((a) => new Set(a.map((x) => x.name)).size === a.length, 'authenticator names must be unique'),
    // The authenticator a bare user name (no realm, no known @domain) goes to.
    defaultRealm: z.string().min(1).max(63).default('local'),
    // Broker group id → role for directory and SSO users (the highest wins; default user).
    roleMapping: z.record(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/), z.enum(['user', 'helpdesk', 'admin'])).default({}),
    // Second factors: TOTP, passkeys, recovery codes (docs/authentication.md, "Second factors").
    mfa: z
      .strictObject({
        // Who must use a second factor at every password login (local, LDAP); they enrol one at login if they have none.
        requiredFor: z
          .strictObject({
            roles: z.array(z.enum(['user', 'helpdesk', 'admin'])).default(['helpdesk', 'admin']),
            groups: z.array(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/)).default([]),
          })
          .prefault({}),
        // Shown in authenticator apps and passkey prompts (TOTP issuer, WebAuthn relying party name).
        issuer: z.string().min(1).max(64).default('vdi-broker'),
        // OIDC `amr` values that count as a second factor done at the IdP (authenticators with trustIdpMfa).
        idpMethods: z.array(z.string().min(1).max(32)).default(['mfa', 'otp', 'hwk', 'swk', 'sc', 'fpt', 'face', 'iris', 'retina']),
        // Wrong codes (TOTP, recovery, passkey) per user before further attempts wait for the window's end.
        maxFailures: z.number().int().min(1).max(100).default(5),
        // The window wrong second-factor attempts are counted in, from the first one.
        failureWindowSeconds: z.number().int().min(10).max(86400).default(300),
      })
      .prefault({}),
    // Replaced by auth.lockout / auth.throttle (a hard per-account lock by default let anyone lock anyone out).
    maxFailuresPerAccount: removedThrottleKey,
    accountLockoutSeconds: removedThrottleKey,
    maxFailuresPerAddress: removedThrottleKey,
    addressLockoutSeconds: removedThrottleKey,
    failureWindowSeconds: removedThrottleKey,
  }),
  // Enrolled thin-client devices (server/devices, docs/devices.md).
  devices: z
    .strictObject({
      // Refuse kiosk logins from browsers that are not enrolled devices (the kiosk shows the enrolment page instead).
      requireEnrolledKiosk: z.boolean().default(false),
      // Name of the device credential cookie (HttpOnly, SameSite=Strict, Secure over TLS).
      cookieName: z.string().regex(/^[A-Za-z0-9._-]+$/).default('vdi.device'),
      // A device's credential is replaced on use at most this often (parallel requests share one).
      rotateAfterSeconds: z.number().int().min(10).max(30 * 86400).default(300),
      // How long the replaced credential stays valid (requests already in flight with it).
      graceSeconds: z.number().int().min(5).max(3600).default(120),
      // Locations that name a default pool: a personal kiosk there launches it straight after login.
      locations: z
        .array(z.strictObject({ name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, . _ -'), defaultPool: z.string().regex(/^[a-z][a-z0-9-]*[a-z0-9]$/, 'a pool name').optional() }))
        .max(1000)
        .refine((a) => new Set(a.map((l) => l.name)).size === a.length, 'location names must be unique')
        .default([]),
    })
    .prefault({}),
  desktops: z.strictObject({
    macPrefix,
    macPoolSize: z.number().int().min(1).max(16_777_216),
    deletedRetentionDays: z.number().int().min(0).max(365),
  }),
  // The guest agent channel (server/agent, docs/agent.md).
  agent: z
    .strictObject({
      // How long a built or refreshed desktop may take, after its VM started, until its guest says it is up (agent hello, qemu-guest-agent ping, or console + the image's boot grace); longer counts as a failed operation.
      readyTimeoutMs: ms.default(120_000),
      // Pass interval of the agents reconciler: the replica holding its lease keeps a channel to every running desktop's agent.
      syncIntervalMs: ms.default(2000),
      // The agent of images whose version has no "agent" in its manifest.json: vdi (ours), qga (qemu-guest-agent only), none (console + boot grace).
      defaultImageAgent: z.enum(['vdi', 'qga', 'none']).default('none'),
      // The boot grace of such images, ms (with agent none: ready when the console answers plus this).
      defaultBootGraceMs: z.number().int().min(0).max(600_000).default(0),
      // Allow commands in guests through qemu-guest-agent's guest-exec when the caller's pool policy does not say.
      qgaExec: z.boolean().default(false),
    })
    .prefault({}),
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
  gateway: z
    .strictObject({
      listen: z.enum(['unix', 'tcp']),
      socketDir: z.string(),
      host: z.string().min(1),
      port,
      lossyQualityMin: z.number().int().min(1).max(100),
      lossyQualityMax: z.number().int().min(1).max(100),
      losslessRefreshMs: z.number().int().min(50).max(60_000),
    })
    // The listening address is what grants and session claims name and what other replicas
    // connect to: a wildcard names no machine (and every replica's gateway would take grants
    // meant for another's).
    .refine((g) => g.listen !== 'tcp' || !wildcardHost.test(g.host), {
      message: 'with listen: tcp, the address other replicas reach this gateway on (grants name it), not a wildcard address',
      path: ['host'],
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
  // Session recordings (docs/recordings.md): pools with recording 'on'/'notify' are recorded by the tunnel.
  recordings: z
    .strictObject({
      // Where the tunnel writes recordings (directory 0700, files 0600); relative to the working directory.
      dir: z.string().min(1).default('data/recordings'),
      // Recordings older than this are deleted (file and index) by the recording-retention reconciler.
      retentionDays: z.number().int().min(1).max(3650).default(90),
      // Pass interval of the recording-retention reconciler.
      retentionIntervalMs: ms.default(3_600_000),
    })
    .prefault({}),
  logging: z.strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  }),
});

export type Config = z.infer<typeof configSchema>;
