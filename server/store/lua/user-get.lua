-- A user's record and groups in one round trip (ARGV: prefix, user id): {record as a JSON object
-- ('{}' when there is none), SMEMBERS list}. Read on every API request (the principal behind a
-- login), so one command instead of a MULTI of two; atomic like the MULTI was. Bare script (no
-- prelude: scripts.ts; hash_json is prepended to every script).
local uk = ARGV[1] .. 'user:' .. ARGV[2]
return { hash_json(uk), redis.call('SMEMBERS', uk .. ':groups') }
