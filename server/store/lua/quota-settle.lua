-- Settles an upload (or a delete): its reservation, if any, is dropped and the real change in
-- bytes and files is added to the count. An unknown count stays unknown (the next read counts
-- the folder). gen moves with every change, so a walk that ran meanwhile does not overwrite it.
-- KEYS[1]: the folder's count hash. ARGV: id ('' = none), delta bytes, delta files.
if ARGV[1] ~= '' then redis.call('HDEL', KEYS[1], 'res:' .. ARGV[1]) end
local cur = redis.call('HMGET', KEYS[1], 'used', 'files')
if cur[1] and (tonumber(ARGV[2]) ~= 0 or tonumber(ARGV[3]) ~= 0) then
  local used = math.max(0, tonumber(cur[1]) + tonumber(ARGV[2]))
  local files = math.max(0, tonumber(cur[2] or '0') + tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'used', used, 'files', files)
  redis.call('HINCRBY', KEYS[1], 'gen', 1)
  redis.call('EXPIRE', KEYS[1], 2592000)
end
return 1
