-- Give a lease up if we hold it (ARGV: prefix, job, holder token).
local k = P .. 'lease:' .. ARGV[2]
if redis.call('GET', k) == ARGV[3] then return redis.call('DEL', k) end
return 0
