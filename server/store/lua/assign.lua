-- Hand a user a desktop of a pool, atomically (ARGV: prefix, pool, user, new session id,
-- new desktop id, now ms, client address, MAC prefix, MAC pool size).
-- Order: the user's existing desktop (and live session), a ready desktop, a new desktop in a
-- free provisioning slot, else pool_exhausted.
-- Returns {outcome, desktop id, session id} with outcome existing | assigned | provisioning,
-- or {'err', code}.
local pool, user, sid, did, now, addr = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local p, perr = usable_pool(pool)
if not p then return { 'err', perr } end

local existing = hget(k_assign(pool), user)
if existing then
  local dk = k_desktop(existing)
  local st = hget(dk, 'state')
  if st == 'in_use' or st == 'assigned' or st == 'provisioning' or st == 'refreshing' then
    local cur = hget(dk, 'session')
    if session_live(cur) then return { 'existing', existing, cur } end
    new_session(sid, user, existing, pool, now, addr)
    if st == 'assigned' then set_state(existing, pool, 'assigned', 'in_use', now) end
    return { 'assigned', existing, sid }
  elseif st == 'error' and p.assignment == 'dedicated' then
    return { 'err', 'desktop_unavailable' }
  end
  -- deleting, deleted, expired, or a broken floating desktop: the claim is stale.
  redis.call('HDEL', k_assign(pool), user)
end

local ready = redis.call('SPOP', k_state(pool, 'ready'))
if ready then
  set_state(ready, pool, 'ready', 'in_use', now)
  redis.call('HSET', k_assign(pool), user, ready)
  new_session(sid, user, ready, pool, now, addr)
  return { 'assigned', ready, sid }
end

if redis.call('SCARD', P .. 'pool:' .. pool .. ':desktops') < p.max then
  local name, err = new_desktop(did, pool, user, now, ARGV[8], tonumber(ARGV[9]))
  if not name then return { 'err', err } end
  redis.call('HSET', k_assign(pool), user, did)
  new_session(sid, user, did, pool, now, addr)
  return { 'provisioning', did, sid }
end
return { 'err', 'pool_exhausted' }
