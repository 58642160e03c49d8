-- Take or renew a lease (ARGV: prefix, job, holder token, ttl ms). Returns 1 if held.
local k = P .. 'lease:' .. ARGV[2]
local cur = redis.call('GET', k)
if cur == false then
  redis.call('SET', k, ARGV[3], 'PX', ARGV[4])
  return 1
elseif cur == ARGV[3] then
  redis.call('PEXPIRE', k, ARGV[4])
  return 1
end
return 0
