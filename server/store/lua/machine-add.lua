-- Add a machine of a manual pool and its desktop, atomically (ARGV: prefix, machine id = desktop
-- id, pool, provider, now ms, name, MAC or '', desktop host, then field/value pairs of the
-- machine hash). The desktop starts in `provisioning`: the lifecycle reconciler asks the manual
-- driver to wake the machine and waits for its console before it is ready (nothing is cloned).
-- The name is a desktop name (unique broker-wide); a Wake-on-LAN MAC is unique like any desktop's.
-- Returns {'ok'} or {'err', code, field}.
local id, pool, provider, now, name, mac, host = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local f = redis.call('HMGET', k_pool(pool), 'provider', 'deleting')
if not f[1] or f[2] == '1' then return { 'err', 'not_found', 'pool' } end
if f[1] ~= provider then return { 'err', 'validation_failed', 'pool' } end
if redis.call('EXISTS', P .. 'machine:' .. id) == 1 then return { 'err', 'already_exists', 'id' } end
if redis.call('HSETNX', P .. 'desktop-names', name, id) == 0 then return { 'err', 'already_exists', 'name' } end
if mac ~= '' and redis.call('HSETNX', P .. 'macs', mac, id) == 0 then
  redis.call('HDEL', P .. 'desktop-names', name)
  return { 'err', 'already_exists', 'mac' }
end
redis.call('HSET', k_desktop(id), 'id', id, 'pool', pool, 'name', name, 'state', 'provisioning',
  'provider', provider, 'host', host, 'mac', mac, 'user', '', 'session', '', 'image', '',
  'createdAt', now, 'updatedAt', now, 'stateSince', now, 'failures', 0, 'nextAttemptAt', 0, 'lastError', '')
redis.call('SADD', P .. 'pool:' .. pool .. ':desktops', id)
redis.call('SADD', k_state(pool, 'provisioning'), id)
local mk = P .. 'machine:' .. id
for i = 9, #ARGV, 2 do redis.call('HSET', mk, ARGV[i], ARGV[i + 1]) end
redis.call('SADD', P .. 'machines', id)
return { 'ok' }
