-- An HTTP session (express-session's JSON under ARGV[2]) and, when it holds a login, the user it
-- names, in one round trip (ARGV: prefix, session key). Returns {} when there is no session,
-- {json} when it names no user, {json, user id, user record as a JSON object ('{}' when there is
-- none), SMEMBERS list} otherwise; read at the same instant, like the separate reads it replaces.
-- Bare script (no prelude: scripts.ts; hash_json is prepended to every script).
local s = redis.call('GET', ARGV[2])
if not s then return {} end
local ok, sess = pcall(cjson.decode, s)
local user = ok and type(sess) == 'table' and type(sess.passport) == 'table' and sess.passport.user
if type(user) ~= 'string' then return { s } end
local uk = ARGV[1] .. 'user:' .. user
return { s, user, hash_json(uk), redis.call('SMEMBERS', uk .. ':groups') }
