-- Hand a user a desktop of a pool, atomically (ARGV: prefix, pool, user, new session id,
-- new desktop id, now ms, client address, MAC prefix, MAC pool size, and optionally the pool's
-- revision the caller decided on: pool_changed, and nothing done, when the pool has another).
-- Order: the user's existing desktop with its live session (handed back whatever the pool's
-- state: a disabled pool or one in maintenance refuses only NEW sessions; desktop_unavailable
-- while it is marked unreachable, i.e. its host does not answer), then the pool's
-- gate (pool_disabled / pool_maintenance), a new session on the user's own desktop, a ready
-- desktop not marked unreachable, a new desktop in a free provisioning slot, else pool_exhausted.
-- Returns {outcome, desktop id, session id, session record, desktop record} with outcome existing |
-- assigned | provisioning (the records as they are after the decision, as JSON objects: the
-- caller needs no second round trip), or {'err', code}.
local pool, user, sid, did, now, addr = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local function done(outcome, desktop, session)
  return { outcome, desktop, session, hash_json(k_session(session)), hash_json(k_desktop(desktop)) }
end
-- The caller checked entitlements (and location) on the pool at that revision: a pool saved or
-- marked for deletion since then is decided again on its new record.
if ARGV[10] and ARGV[10] ~= '' and hget(k_pool(pool), 'rev') ~= ARGV[10] then return { 'err', 'pool_changed' } end
local p, gate = pool_fields(pool)
if not p then return { 'err', 'not_found' } end

local existing = hget(k_assign(pool), user)
if existing then
  local dk = k_desktop(existing)
  local st = hget(dk, 'state')
  if st == 'in_use' or st == 'assigned' or st == 'provisioning' or st == 'refreshing' then
    -- Its host does not answer: a clear refusal beats a console that cannot connect (claim kept).
    if unreachable(existing) then return { 'err', 'desktop_unavailable' } end
    local cur = hget(dk, 'session')
    if session_live(cur) then return done('existing', existing, cur) end
    -- No live session: starting one is new work the pool's gate decides (the claim is kept).
    if gate then return { 'err', gate } end
    new_session(sid, user, existing, pool, now, addr)
    if st == 'assigned' then set_state(existing, pool, 'assigned', 'in_use', now) end
    return done('assigned', existing, sid)
  elseif st == 'error' and p.assignment == 'dedicated' then
    return { 'err', 'desktop_unavailable' }
  end
  -- deleting, deleted, expired, or a broken floating desktop: the claim is stale.
  redis.call('HDEL', k_assign(pool), user)
end
if gate then return { 'err', gate } end

local ready = pick_ready(pool)
if ready then
  set_state(ready, pool, 'ready', 'in_use', now)
  redis.call('HSET', k_assign(pool), user, ready)
  new_session(sid, user, ready, pool, now, addr)
  return done('assigned', ready, sid)
end

if redis.call('SCARD', P .. 'pool:' .. pool .. ':desktops') < p.max then
  local name, err = new_desktop(did, pool, user, now, ARGV[8], tonumber(ARGV[9]))
  if not name then return { 'err', err } end
  redis.call('HSET', k_assign(pool), user, did)
  new_session(sid, user, did, pool, now, addr)
  return done('provisioning', did, sid)
end
return { 'err', 'pool_exhausted' }
