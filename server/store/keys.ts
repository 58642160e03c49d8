// Every Redis key the broker uses is named here and nowhere else (the Lua scripts build the
// same names from the prefix; docs/redis-keys.md documents both). Keep the three in step.

export function keyspace(prefix: string) {
  return {
    prefix,
    // identity
    users: `${prefix}users`, // set of user ids
    user: (id: string) => `${prefix}user:${id}`, // hash
    userGroups: (id: string) => `${prefix}user:${id}:groups`, // set of group names
    userSessions: (id: string) => `${prefix}user:${id}:sessions`, // set of live session ids
    groups: `${prefix}groups`, // set of group names
    group: (name: string) => `${prefix}group:${name}`, // hash
    groupMembers: (name: string) => `${prefix}group:${name}:members`, // set of user ids
    apiKeys: `${prefix}apikeys`, // set of key ids
    // second factors (server/auth/mfa): TOTP and passkeys of a user, their recovery codes
    mfa: (user: string) => `${prefix}mfa:${user}`, // hash: totp (sealed secret) totpStep totpCreatedAt
    mfaRecovery: (user: string) => `${prefix}mfa:${user}:recovery`, // hash code id -> salt:sha256, HDEL when used
    mfaPasskeys: (user: string) => `${prefix}mfa:${user}:passkeys`, // hash credential id -> JSON
    mfaEnrol: (user: string) => `${prefix}mfa:${user}:enrol`, // string: sealed TOTP secret being enrolled, EX
    mfaChallenge: (user: string) => `${prefix}mfa:${user}:challenge`, // string: JSON WebAuthn challenge, EX, GETDEL
    mfaFailures: (user: string) => `${prefix}rl:mfa:${user}`, // string: failed second-factor attempts, PX window
    apiKey: (id: string) => `${prefix}apikey:${id}`, // hash
    // enrolled thin-client devices (server/devices): secrets are kept only as SHA-256 hashes
    devices: `${prefix}devices`, // set of device ids
    device: (id: string) => `${prefix}device:${id}`, // hash: the device record, its current credential hash and rotation time
    deviceCredential: (hash: string) => `${prefix}device-cred:${hash}`, // string: device id; the previous credential's key has a PX grace
    enrolCode: (hash: string) => `${prefix}enrol-code:${hash}`, // hash: id location mode name usesLeft expiresAt ...; PXAT at its expiry
    enrolCodes: `${prefix}enrol-codes`, // zset code id -> expiresAt (ms), the admin's list
    enrolCodeById: (id: string) => `${prefix}enrol-code-id:${id}`, // string: the code's hash; PXAT at its expiry
    deviceRefusals: (address: string) => `${prefix}rl:device-refused:${address}`, // string: one audit entry per address and minute for bad device cookies
    httpSessionPrefix: `${prefix}http:`, // express-session records (connect-redis)
    rateLimitPrefix: `${prefix}rl`, // login throttling (auth/throttle.scripts.ts)
    sessionSecret: `${prefix}secret:session`, // string, generated once
    tunnelSecret: `${prefix}secret:tunnel`, // string, generated once (when tunnel.secret is empty)
    // streaming tunnel
    ticket: (hash: string) => `${prefix}ticket:${hash}`, // string: encrypted connection ticket, EX ttl
    tunnelEvents: `${prefix}tunnel:events`, // pub/sub channel: takeovers and ended tunnels
    // pools and desktops
    pools: `${prefix}pools`, // set of pool names
    pool: (name: string) => `${prefix}pool:${name}`, // hash: spec JSON + fields the scripts read
    poolDesktops: (name: string) => `${prefix}pool:${name}:desktops`, // set of live desktop ids
    poolState: (name: string, state: string) => `${prefix}pool:${name}:state:${state}`, // set
    poolAssignments: (name: string) => `${prefix}pool:${name}:assign`, // hash user -> desktop id
    poolSessions: (name: string) => `${prefix}pool:${name}:sessions`, // set of live session ids
    desktop: (id: string) => `${prefix}desktop:${id}`, // hash
    desktopNames: `${prefix}desktop-names`, // hash name -> desktop id (unique broker-wide)
    macs: `${prefix}macs`, // hash mac -> desktop id
    macCursor: `${prefix}macs:cursor`, // integer, where the next MAC search starts
    // machines of manual pools (the broker does not create them; id = their desktop's id)
    machines: `${prefix}machines`, // set of machine ids
    machine: (id: string) => `${prefix}machine:${id}`, // hash: console settings, sealed credentials, health
    // golden images
    images: `${prefix}images`, // set of image names
    image: (name: string) => `${prefix}image:${name}`, // hash: name displayName current createdAt updatedAt
    imageVersions: (name: string) => `${prefix}image:${name}:versions`, // hash version -> JSON
    // hosts
    hostMaintenance: `${prefix}hosts:maintenance`, // hash "provider/host" -> 1
    // user files (one hash per share and folder name: count and upload reservations)
    quota: (share: string, folder: string) => `${prefix}quota:${share}:${folder}`, // hash: used files countedAt gen res:<upload>
    drains: `${prefix}drains`, // set of "provider/host" with a drain record
    drain: (host: string) => `${prefix}drain:${host}`, // hash: the drain of "provider/host"
    drainDesktops: (host: string) => `${prefix}drain:${host}:desktops`, // hash desktop id -> JSON progress
    // sessions
    sessionsLive: `${prefix}sessions:live`, // set of live session ids
    session: (id: string) => `${prefix}session:${id}`, // hash
    sessionMessages: (id: string) => `${prefix}session:${id}:messages`, // list of JSON helpdesk messages for the viewer, capped, TTL
    sessionStats: (id: string) => `${prefix}session:${id}:stats`, // hash: the open tunnel's live figures, EX
    sessionShadow: (id: string) => `${prefix}session:${id}:shadow`, // string: JSON helpdesk shadow (consent, control), EX (server/broker/shadow.service.ts)
    // session recordings (server/tunnel records, docs/recordings.md)
    recordings: `${prefix}recordings`, // zset recording id -> start (ms)
    recording: (id: string) => `${prefix}recording:${id}`, // hash: the recording's index entry
    // background work and audit
    lease: (job: string) => `${prefix}lease:${job}`, // string: holder token, PX ttl
    replicaBarrier: `${prefix}replica-barrier`, // string: ms of the last mark before a WAIT (store/replica-barrier.ts), PX 60 s
    jobHeartbeat: (job: string) => `${prefix}job:${job}:heartbeat`, // string: last run (ms), PX
    replicaClocks: `${prefix}replicas:clock`, // hash replica id -> JSON {replica host pid offsetMs rttMs at}: each replica's clock against Redis TIME (server/doctor)
    poolHistory: (pool: string) => `${prefix}history:${pool}`, // list: one CSV sample per minute, last 1440 (server/jobs/pool-history.ts)
    audit: `${prefix}audit`, // stream
  };
}

export type Keyspace = ReturnType<typeof keyspace>;
