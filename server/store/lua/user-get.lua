-- A user's record and groups in one round trip (ARGV: prefix, user id): {record as a JSON object
-- ('{}' when there is none), SMEMBERS list}. Read on every API request (the principal behind a
-- login), so one command instead of a MULTI of two; atomic like the MULTI was. Bare script (no
-- prelude: scripts.ts); the record as JSON like the prelude's hash_json.
local uk = ARGV[1] .. 'user:' .. ARGV[2]
local flat = redis.call('HGETALL', uk)
local h = {}
for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
return { #flat == 0 and '{}' or cjson.encode(h), redis.call('SMEMBERS', uk .. ':groups') }
