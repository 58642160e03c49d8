-- Create or update a pool (ARGV: prefix, pool name, mode create|update, then field/value pairs).
-- Returns {'ok'} or {'err', code}.
local pool, mode = ARGV[2], ARGV[3]
local pk = k_pool(pool)
local exists = redis.call('EXISTS', pk) == 1
if mode == 'create' and exists then return { 'err', 'already_exists' } end
if mode == 'update' and (not exists or hget(pk, 'deleting') == '1') then return { 'err', 'not_found' } end
for i = 4, #ARGV, 2 do redis.call('HSET', pk, ARGV[i], ARGV[i + 1]) end
redis.call('SADD', P .. 'pools', pool)
return { 'ok' }
