// The login throttle's decisions, each one atomic in Redis so every replica and every parallel
// request sees the same counts. Keys (all under <prefix>rl:login:):
//   acct:<user>          hash n (attempts counted), next (progressive: earliest next attempt),
//                        until (hard: locked until), last, told (a refusal was already audited)
//   pair:<user>:<addr>   hash n, next, until (blocked), last, told: one user name from one address
//   pairs:<user>         zset address -> expiry of its pair hash (to unlock / list a user's pairs)
//   spray:<addr>         zset user name -> time of its last failure from this address
//   addr:<addr>          hash until, accounts, told: the address is blocked for spraying
//   known:<user>         zset address -> time of the last successful login from it
//   accounts, addresses  zsets name -> expiry: the index the helpdesk lists
// User names never contain ':' (see model.ts `username`), so pair keys cannot collide.

/** Shared helpers, prepended to each script. */
const PRELUDE = `
local base = ARGV[1]
local id = ARGV[2]
local addr = ARGV[3]
local now = tonumber(ARGV[4])
local acctK = base .. ':acct:' .. id
local pairK = base .. ':pair:' .. id .. ':' .. addr
local pairsK = base .. ':pairs:' .. id
local addrK = base .. ':addr:' .. addr
local sprayK = base .. ':spray:' .. addr
local knownK = base .. ':known:' .. id
local accountsK = base .. ':accounts'
local addressesK = base .. ':addresses'
local function num(k, f) return tonumber(redis.call('HGET', k, f) or '0') or 0 end
`;

/** The lockout mode and the progressive waits, ARGV[5..8] of the scripts that count attempts. */
const DELAY = `
local hard = ARGV[5] == '1'
local free, baseMs, capMs = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
-- the wait after the n-th counted attempt: none below free, then doubling, capped
local function delay(n)
  if n < free then return 0 end
  local d = baseMs * math.pow(2, math.min(n - free, 40))
  if d > capMs then d = capMs end
  return d
end
`;

/**
 * Before a password is checked. Order: the address's spraying block, then this user name from
 * this address, then the user name itself (hard lock, or progressive wait unless the address is
 * one the account logged in from before). An accepted attempt is counted at once (a success
 * clears it), so parallel guesses cannot overtake the limits.
 * ARGV: base id addr now hard(0/1) free baseMs capMs threshold durationMs knownMs windowMs pairFailures pairBlockMs
 * Returns {code, waitMs, firstRefusal, accountAttempts, pairAttempts, scope}; code 'ok' when accepted.
 */
export const RESERVE = `${PRELUDE}
${DELAY}local threshold, durationMs = tonumber(ARGV[9]), tonumber(ARGV[10])
local knownMs, windowMs = tonumber(ARGV[11]), tonumber(ARGV[12])
local pairFailures, pairBlockMs = tonumber(ARGV[13]), tonumber(ARGV[14])
local function refuse(k, code, waitMs, scope)
  local first = redis.call('HSETNX', k, 'told', '1')
  return {code, math.ceil(waitMs), first, 0, 0, scope}
end

local aUntil = num(addrK, 'until')
if aUntil > now then return refuse(addrK, 'too_many_attempts', aUntil - now, 'address') end

local pUntil, pNext = num(pairK, 'until'), num(pairK, 'next')
if pUntil > now then return refuse(pairK, 'login_throttled', pUntil - now, 'pair') end
if pNext > now then return refuse(pairK, 'login_throttled', pNext - now, 'pair') end

local n = num(acctK, 'n')
local aLock = num(acctK, 'until')
if hard then
  if aLock > now then return refuse(acctK, 'account_locked', aLock - now, 'account') end
  if aLock > 0 then n = 0 end -- an expired lock starts the count over
else
  local known = false
  if knownMs > 0 then
    local s = redis.call('ZSCORE', knownK, addr)
    known = s ~= false and tonumber(s) > now - knownMs
  end
  local nxt = num(acctK, 'next')
  if not known and nxt > now then return refuse(acctK, 'login_throttled', nxt - now, 'account') end
end

n = n + 1
local acctTtl
if hard then
  local lockUntil = 0
  if n >= threshold then lockUntil = now + durationMs end
  redis.call('HSET', acctK, 'n', n, 'until', lockUntil, 'next', 0, 'last', now)
  acctTtl = windowMs + durationMs
else
  local d = delay(n)
  redis.call('HSET', acctK, 'n', n, 'next', now + d, 'until', 0, 'last', now)
  acctTtl = windowMs + d
end
redis.call('HDEL', acctK, 'told')
redis.call('PEXPIRE', acctK, acctTtl)

local pn = num(pairK, 'n') + 1
local pBlock = 0
if pn >= pairFailures then pBlock = now + pairBlockMs end
redis.call('HSET', pairK, 'n', pn, 'next', now + delay(pn), 'until', pBlock, 'last', now)
redis.call('HDEL', pairK, 'told')
local pairTtl = windowMs + pairBlockMs
redis.call('PEXPIRE', pairK, pairTtl)
redis.call('ZADD', pairsK, now + pairTtl, addr)
redis.call('ZREMRANGEBYSCORE', pairsK, '-inf', now)
redis.call('PEXPIRE', pairsK, pairTtl)
local expires = now + math.max(acctTtl, pairTtl)
local cur = tonumber(redis.call('ZSCORE', accountsK, id) or '0') or 0
if expires > cur then redis.call('ZADD', accountsK, expires, id) end
redis.call('ZREMRANGEBYSCORE', accountsK, '-inf', now) -- the index forgets names whose state expired
return {'ok', 0, 0, n, pn, ''}
`;

/**
 * A wrong password (or unknown or disabled user): the user name joins the address's spraying set;
 * at sprayAccounts distinct names in the window the address is blocked.
 * ARGV: base id addr now windowMs sprayAccounts sprayBlockMs
 * Returns {blockedNow (0/1), distinctNames}.
 */
export const FAILED = `${PRELUDE}
local windowMs, sprayAccounts, sprayBlockMs = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('ZADD', sprayK, now, id)
redis.call('ZREMRANGEBYSCORE', sprayK, '-inf', now - windowMs)
redis.call('PEXPIRE', sprayK, windowMs)
local c = redis.call('ZCARD', sprayK)
if c >= sprayAccounts and num(addrK, 'until') <= now then
  redis.call('DEL', addrK, sprayK)
  redis.call('HSET', addrK, 'until', now + sprayBlockMs, 'accounts', c)
  redis.call('PEXPIRE', addrK, sprayBlockMs)
  redis.call('ZADD', addressesK, now + sprayBlockMs, addr)
  redis.call('ZREMRANGEBYSCORE', addressesK, '-inf', now)
  return {1, c}
end
return {0, c}
`;

/**
 * The right password: the account's count and this pair are cleared (other addresses' pairs stay,
 * an attacker's among them), the name leaves the address's spraying set, and the address becomes
 * a known one for the account.
 * ARGV: base id addr now knownMs knownMax
 */
export const SUCCEEDED = `${PRELUDE}
local knownMs, knownMax = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('DEL', acctK, pairK)
redis.call('ZREM', pairsK, addr)
redis.call('ZREM', sprayK, id)
redis.call('ZREMRANGEBYSCORE', pairsK, '-inf', now)
if redis.call('ZCARD', pairsK) == 0 then redis.call('ZREM', accountsK, id) end
if knownMs > 0 then
  redis.call('ZADD', knownK, now, addr)
  redis.call('ZREMRANGEBYRANK', knownK, 0, -(knownMax + 1))
  redis.call('PEXPIRE', knownK, knownMs)
end
return 1
`;

/**
 * An attempt that reserve counted but that never reached a verdict (Redis or the directory failed
 * before the password was judged): given back, so an outage (a Redis failover, a directory
 * restart) does not throttle or lock out the users who retried through it. The waits and locks
 * are recomputed from the lower counts. Nothing joins the spraying set.
 * ARGV: base id addr now hard(0/1) free baseMs capMs threshold pairFailures
 */
export const RELEASED = `${PRELUDE}
${DELAY}local threshold, pairFailures = tonumber(ARGV[9]), tonumber(ARGV[10])
local n = num(acctK, 'n')
if n > 0 then
  n = n - 1
  if hard then
    if n < threshold then redis.call('HSET', acctK, 'n', n, 'until', 0) else redis.call('HSET', acctK, 'n', n) end
  else
    redis.call('HSET', acctK, 'n', n, 'next', n > 0 and now + delay(n) or 0)
  end
end
local pn = num(pairK, 'n')
if pn > 0 then
  pn = pn - 1
  redis.call('HSET', pairK, 'n', pn, 'next', pn > 0 and now + delay(pn) or 0)
  if pn < pairFailures then redis.call('HSET', pairK, 'until', 0) end
end
return {n, pn}
`;

/**
 * The helpdesk's unlock: the account's count or lock and every pair of it are cleared.
 * ARGV: base id - now. Returns {accountHadState (0/1), pairsCleared}.
 */
export const UNLOCK = `${PRELUDE}
local had = redis.call('DEL', acctK)
local addrs = redis.call('ZRANGE', pairsK, 0, -1)
local cleared = 0
for _, a in ipairs(addrs) do cleared = cleared + redis.call('DEL', base .. ':pair:' .. id .. ':' .. a) end
redis.call('DEL', pairsK)
redis.call('ZREM', accountsK, id)
return {had, cleared}
`;
