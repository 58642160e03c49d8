-- Log a session off and give its desktop back per the pool's policy
-- (ARGV: prefix, session id, now ms, reason, [owner, [audit entry from 6 on: prelude's
-- audit_append, written when the session ends here]]). Returns {'ok', desktop id, new state,
-- session record, desktop record} (records as JSON objects: the caller needs no second round
-- trip), {'noop', session record} when the session is not live, or {'not_found'} when an owner
-- is given and the session is not theirs (the logoff API: "not yours" looks like "no such session").
local sid, now, reason, owner = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local sk = k_session(sid)
if owner and owner ~= '' and hget(sk, 'user') ~= owner then return { 'not_found' } end
local did = hget(sk, 'desktop')
if not did or not end_session(sid, now, reason) then return { 'noop', hash_json(sk) } end

local dk = k_desktop(did)
local function ok(state)
  audit_append(6, { reason = reason, desktop = did, desktopState = state })
  return { 'ok', did, state, hash_json(sk), hash_json(dk) }
end
local st = hget(dk, 'state')
if not st or hget(dk, 'session') ~= sid then return ok(st or 'deleted') end
redis.call('HSET', dk, 'session', '', 'updatedAt', now)
local pool = hget(dk, 'pool')
local f = redis.call('HMGET', k_pool(pool), 'assignment', 'persistence')
local assignment, persistence = f[1] or 'floating', f[2] or 'delete'

if st ~= 'in_use' then
  -- still provisioning or refreshing: a floating desktop goes back to the pool when done
  if assignment ~= 'dedicated' then clear_owner(did, pool) end
  return ok(st)
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
return ok(to)
