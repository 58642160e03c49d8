// Lua for the session's logon timeline, guest idle time and helpdesk messages (sessions
// repository). Each one writes only to a session hash that exists, so a late report never
// resurrects an expired session as a partial hash.

/**
 * Once the first frame is drawn and, when the guest runs our agent, its logon is done, the
 * session became usable: click_to_usable is the later of the two (both count from the Launch
 * click). Set once; returns its value when this call set it, else false.
 */
const USABLE = `
local function usable(k)
  if redis.call('HEXISTS', k, 'logon:click_to_usable') == 1 then return false end
  local f = redis.call('HMGET', k, 'logon:first_frame', 'logon:guest_logon', 'logonExpectsGuest')
  if not f[1] then return false end
  local ms = tonumber(f[1])
  if f[3] == '1' then
    if not f[2] then return false end
    ms = math.max(ms, tonumber(f[2]))
  end
  redis.call('HSET', k, 'logon:click_to_usable', ms)
  return ms
end`;

/**
 * Records phases (name, value pairs; names are hash fields: logon:<phase> or a marker) that are
 * not recorded yet: the first launch's timeline is kept, reconnects do not rewrite it. ARGV: n,
 * then n arguments of an audit entry written with the timeline in the same command (the audit
 * stream's key, its MAXLEN, the entry's field/value pairs; n = 0 for none; written whether or
 * not the session is still there), then the pairs.
 * Returns {names set..., then '=guest_logon', ms and '=usable', ms when this call derived them}.
 */
export const RECORD_LOGON = `${USABLE}
local k = KEYS[1]
local na = tonumber(ARGV[1])
if na > 0 then
  local fv = {}
  for i = 4, na + 1 do fv[#fv + 1] = ARGV[i] end
  redis.call('XADD', ARGV[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fv))
end
if redis.call('EXISTS', k) == 0 then return {} end
local out = {}
for i = na + 2, #ARGV, 2 do
  if redis.call('HSETNX', k, ARGV[i], ARGV[i + 1]) == 1 then out[#out + 1] = ARGV[i] end
end
-- The guest's logon may be reported before the request that caused it was answered (and its
-- requestedAt written): whichever comes second derives guest_logon.
local g = redis.call('HMGET', k, 'guestLogonAt', 'requestedAt')
if g[1] and g[2] then
  local ms = math.max(0, tonumber(g[1]) - tonumber(g[2]))
  if redis.call('HSETNX', k, 'logon:guest_logon', ms) == 1 then out[#out + 1] = '=guest_logon'; out[#out + 1] = tostring(ms) end
end
local u = usable(k)
if u then out[#out + 1] = '=usable'; out[#out + 1] = tostring(u) end
return out`;

/**
 * The browser's first frame (ARGV: ms): accepted once per tunnel (the session's claim counter),
 * refused for ended or unknown sessions. Returns {'ok', recorded (0/1: the logon's first one),
 * usable ms or ''} or {'err', code}.
 */
export const FIRST_FRAME = `${USABLE}
local k = KEYS[1]
local f = redis.call('HMGET', k, 'state', 'tunnels', 'firstFrameTunnel')
if not f[1] then return { 'err', 'not_found' } end
if f[1] == 'ended' then return { 'err', 'conflict' } end
local tunnel = f[2] or '0'
if f[3] == tunnel then return { 'err', 'conflict' } end
redis.call('HSET', k, 'firstFrameTunnel', tunnel)
local first = redis.call('HSETNX', k, 'logon:first_frame', ARGV[1])
local u = usable(k)
return { 'ok', tostring(first), u and tostring(u) or '' }`;

/** The guest's idle time (ARGV: seconds, at ms) on a live session. Returns 1 or 0. */
export const GUEST_IDLE = `
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'ended' then return 0 end
redis.call('HSET', KEYS[1], 'guestIdleSeconds', ARGV[1], 'guestIdleAt', ARGV[2])
return 1`;

/**
 * A helpdesk message for the session's viewer (KEYS: session hash, its message list; ARGV:
 * title, text, at, from, ttl seconds, max kept). Returns the message id, 0 when the session is not live.
 */
export const PUSH_MESSAGE = `
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'ended' then return 0 end
local id = redis.call('HINCRBY', KEYS[1], 'messageSeq', 1)
redis.call('RPUSH', KEYS[2], cjson.encode({ id = id, title = ARGV[1], text = ARGV[2], at = tonumber(ARGV[3]), from = ARGV[4] }))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[6]), -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
return id`;
