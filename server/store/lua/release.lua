-- Log a session off and give its desktop back per the pool's policy
-- (ARGV: prefix, session id, now ms, reason). Returns {'ok', desktop id, new state} or
-- {'noop'} when the session is not live.
local sid, now, reason = ARGV[2], ARGV[3], ARGV[4]
local sk = k_session(sid)
local did = hget(sk, 'desktop')
if not did or not end_session(sid, now, reason) then return { 'noop' } end

local dk = k_desktop(did)
local st = hget(dk, 'state')
if not st or hget(dk, 'session') ~= sid then return { 'ok', did, st or 'deleted' } end
redis.call('HSET', dk, 'session', '', 'updatedAt', now)
local pool = hget(dk, 'pool')
local f = redis.call('HMGET', k_pool(pool), 'assignment', 'persistence')
local assignment, persistence = f[1] or 'floating', f[2] or 'delete'

if st ~= 'in_use' then
  -- still provisioning or refreshing: a floating desktop goes back to the pool when done
  if assignment ~= 'dedicated' then clear_owner(did, pool) end
  return { 'ok', did, st }
end

local to
if persistence == 'delete' then
  to = 'deleting'
  clear_owner(did, pool)
elseif persistence == 'refresh' then
  to = 'refreshing'
  if assignment ~= 'dedicated' then clear_owner(did, pool) end
elseif assignment == 'dedicated' then
  to = 'assigned'
else
  to = 'ready'
  clear_owner(did, pool)
end
local err = set_state(did, pool, 'in_use', to, now)
if err then return { 'err', err } end
return { 'ok', did, to }
