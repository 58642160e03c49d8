-- A user's record and groups in one round trip (ARGV: prefix, user id): {HGETALL list, SMEMBERS
-- list}. Read on every API request (the principal behind a login), so one command instead of a
-- MULTI of two; atomic like the MULTI was. Bare script (no prelude: scripts.ts).
local uk = ARGV[1] .. 'user:' .. ARGV[2]
return { redis.call('HGETALL', uk), redis.call('SMEMBERS', uk .. ':groups') }
