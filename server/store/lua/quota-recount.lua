-- A real count of the folder (a walk) replaces the kept one, unless the files API changed the
-- count while the walk ran (gen moved on): then the kept figure stays, and only countedAt moves
-- (the next recount picks up what the guest wrote meanwhile).
-- KEYS[1]: the folder's count hash. ARGV: used, files, countedAt, gen seen before the walk.
-- Returns {used, files} as kept now.
local cur = redis.call('HMGET', KEYS[1], 'used', 'files', 'gen')
if cur[1] == false or (cur[3] or '0') == ARGV[4] then
  redis.call('HSET', KEYS[1], 'used', ARGV[1], 'files', ARGV[2], 'countedAt', ARGV[3])
  redis.call('EXPIRE', KEYS[1], 2592000)
  return { tonumber(ARGV[1]), tonumber(ARGV[2]) }
end
redis.call('HSET', KEYS[1], 'countedAt', ARGV[3])
return { tonumber(cur[1]), tonumber(cur[2] or '0') }
