-- Helpdesk: give a ready desktop to a user (ARGV: prefix, desktop id, user, now ms).
-- Returns {'ok'} or {'err', code}.
local id, user, now = ARGV[2], ARGV[3], ARGV[4]
local dk = k_desktop(id)
local st = hget(dk, 'state')
if not st or st == 'deleted' then return { 'err', 'not_found' } end
local pool = hget(dk, 'pool')
local held = hget(k_assign(pool), user)
if held and held ~= id then return { 'err', 'already_exists' } end
if st ~= 'ready' then return { 'err', 'illegal_transition' } end
local err = set_state(id, pool, 'ready', 'assigned', now)
if err then return { 'err', err } end
redis.call('HSET', dk, 'user', user)
redis.call('HSET', k_assign(pool), user, id)
return { 'ok' }
