-- Shared by every script (prepended at load time). ARGV[1] is always the key prefix.
-- Keys are built here from the prefix, matching server/store/keys.ts: these scripts assume
-- one Redis (not Redis Cluster), which docs/redis-keys.md states.
local P = ARGV[1]
local ALLOWED = __TRANSITIONS__
local SESSION_RETENTION = 7 * 86400

local function k_desktop(id) return P .. 'desktop:' .. id end
local function k_pool(p) return P .. 'pool:' .. p end
local function k_state(p, s) return P .. 'pool:' .. p .. ':state:' .. s end
local function k_assign(p) return P .. 'pool:' .. p .. ':assign' end
local function k_session(id) return P .. 'session:' .. id end

local function hget(key, field)
  local v = redis.call('HGET', key, field)
  if v == false then return nil end
  return v
end

-- The audit entry of the change a script makes, written with it (atomic): ARGV from `at` on are
-- AuditRepository.scriptArgs (the stream's length bound, then the entry's field/value pairs
-- but its details, which the script knows). Nothing when the caller passed none.
local function audit_append(at, details)
  local maxlen = ARGV[at]
  if not maxlen or maxlen == '' then return end
  local fv = {}
  for i = at + 1, #ARGV do fv[#fv + 1] = ARGV[i] end
  fv[#fv + 1] = 'details'
  fv[#fv + 1] = cjson.encode(details)
  redis.call('XADD', P .. 'audit', 'MAXLEN', '~', maxlen, '*', unpack(fv))
end

-- Move desktop `id` of `pool` from `from` to `to`; refuses what the state machine forbids.
local function set_state(id, pool, from, to, now)
  local row = ALLOWED[from]
  if not row or not row[to] then return 'illegal_transition' end
  redis.call('SREM', k_state(pool, from), id)
  if to ~= 'deleted' then redis.call('SADD', k_state(pool, to), id) end
  redis.call('HSET', k_desktop(id), 'state', to, 'stateSince', now, 'updatedAt', now)
  return nil
end

-- Its provider reports its host not answering (inventory reconciler): kept, never handed out.
local function unreachable(id)
  return (tonumber(hget(k_desktop(id), 'unreachableSince') or '0') or 0) > 0
end

-- A ready desktop of the pool that is not marked unreachable, or nil. One random pick first
-- (the common case); the full scan only while some ready desktop is marked.
local function pick_ready(pool)
  local key = k_state(pool, 'ready')
  local id = redis.call('SRANDMEMBER', key)
  if not id or not unreachable(id) then return id or nil end
  for _, other in ipairs(redis.call('SMEMBERS', key)) do
    if not unreachable(other) then return other end
  end
  return nil
end

local function session_live(sid)
  if not sid or sid == '' then return false end
  local st = hget(k_session(sid), 'state')
  return st ~= nil and st ~= 'ended'
end

local function new_session(sid, user, desktop, pool, now, addr)
  redis.call('HSET', k_session(sid), 'id', sid, 'user', user, 'desktop', desktop, 'pool', pool,
    'state', 'starting', 'clientAddress', addr, 'createdAt', now, 'connectedAt', 0,
    'disconnectedAt', 0, 'lastActivityAt', now, 'endedAt', 0, 'endReason', '')
  redis.call('SADD', P .. 'sessions:live', sid)
  redis.call('SADD', P .. 'user:' .. user .. ':sessions', sid)
  redis.call('SADD', P .. 'pool:' .. pool .. ':sessions', sid)
  redis.call('HSET', k_desktop(desktop), 'session', sid, 'user', user, 'updatedAt', now)
end

-- Ends a live session (the desktop side is the caller's business). False if not live.
local function end_session(sid, now, reason)
  local sk = k_session(sid)
  local st = hget(sk, 'state')
  if not st or st == 'ended' then return false end
  local user = hget(sk, 'user')
  local pool = hget(sk, 'pool')
  redis.call('HSET', sk, 'state', 'ended', 'endedAt', now, 'endReason', reason)
  redis.call('SREM', P .. 'sessions:live', sid)
  redis.call('SREM', P .. 'user:' .. user .. ':sessions', sid)
  redis.call('SREM', P .. 'pool:' .. pool .. ':sessions', sid)
  redis.call('EXPIRE', sk, SESSION_RETENTION)
  return true
end

-- Drop the user's claim on a desktop (the pool's assignment map and the desktop's user field).
local function clear_owner(id, pool)
  local dk = k_desktop(id)
  local user = hget(dk, 'user')
  if user and user ~= '' and hget(k_assign(pool), user) == id then
    redis.call('HDEL', k_assign(pool), user)
  end
  redis.call('HSET', dk, 'user', '')
end

local function alloc_name(id, pool)
  local f = redis.call('HMGET', k_pool(pool), 'namePrefix', 'nameWidth', 'nameSuffix', 'nameMax')
  local prefix, width, suffix, max = f[1] or '', tonumber(f[2] or '1'), f[3] or '', tonumber(f[4] or '999')
  local fmt = '%0' .. width .. 'd'
  for n = 1, max do
    local name = prefix .. string.format(fmt, n) .. suffix
    if redis.call('HSETNX', P .. 'desktop-names', name, id) == 1 then return name end
  end
  return nil
end

local function alloc_mac(id, mprefix, size)
  local cur = tonumber(redis.call('GET', P .. 'macs:cursor') or '0') or 0
  for i = 0, size - 1 do
    local n = (cur + i) % size
    local mac = string.format('%s:%02x:%02x:%02x', mprefix, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
    if redis.call('HSETNX', P .. 'macs', mac, id) == 1 then
      redis.call('SET', P .. 'macs:cursor', (n + 1) % size)
      return mac
    end
  end
  return nil
end

-- A new desktop record in state provisioning, with a unique name and MAC. Returns name or nil, err.
local function new_desktop(id, pool, user, now, mprefix, msize)
  local name = alloc_name(id, pool)
  if not name then return nil, 'name_exhausted' end
  local mac = alloc_mac(id, mprefix, msize)
  if not mac then
    redis.call('HDEL', P .. 'desktop-names', name)
    return nil, 'mac_exhausted'
  end
  local pf = redis.call('HMGET', k_pool(pool), 'provider', 'image')
  redis.call('HSET', k_desktop(id), 'id', id, 'pool', pool, 'name', name, 'state', 'provisioning',
    'provider', pf[1] or '', 'host', '', 'mac', mac, 'user', user, 'session', '', 'image', pf[2] or '',
    'createdAt', now, 'updatedAt', now, 'stateSince', now, 'failures', 0, 'nextAttemptAt', 0, 'lastError', '')
  redis.call('SADD', P .. 'pool:' .. pool .. ':desktops', id)
  redis.call('SADD', k_state(pool, 'provisioning'), id)
  return name, nil
end

-- Pool fields the scripts need, or nil for a missing or deleting pool. The second value is
-- why the pool takes no new sessions (pool_disabled / pool_maintenance), nil when it does:
-- the caller decides what counts as new (a user's live session never does).
local function pool_fields(pool)
  local f = redis.call('HMGET', k_pool(pool), 'max', 'enabled', 'maintenance', 'deleting', 'assignment', 'persistence')
  if not f[1] or f[4] == '1' then return nil, nil end
  local gate = nil
  if f[2] ~= '1' then gate = 'pool_disabled' elseif f[3] == '1' then gate = 'pool_maintenance' end
  return { max = tonumber(f[1]), assignment = f[5], persistence = f[6] }, gate
end
