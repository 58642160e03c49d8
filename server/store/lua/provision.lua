-- Reserve a provisioning slot for a spare desktop if the pool is under its maximum
-- (ARGV: prefix, pool, new desktop id, now ms, MAC prefix, MAC pool size).
-- Returns {'ok', name} or {'err', code}.
local pool, did, now = ARGV[2], ARGV[3], ARGV[4]
local f = redis.call('HMGET', k_pool(pool), 'max', 'enabled', 'deleting')
if not f[1] or f[3] == '1' then return { 'err', 'not_found' } end
if f[2] ~= '1' then return { 'err', 'pool_disabled' } end
if redis.call('SCARD', P .. 'pool:' .. pool .. ':desktops') >= tonumber(f[1]) then return { 'err', 'pool_exhausted' } end
local name, err = new_desktop(did, pool, '', now, ARGV[5], tonumber(ARGV[6]))
if not name then return { 'err', err } end
return { 'ok', name }
