-- Record what the tunnel saw of a session (ARGV: prefix, session id, event, now ms):
-- connected | disconnected | activity. Returns {'ok', state} or {'err', code}.
local sid, ev, now = ARGV[2], ARGV[3], ARGV[4]
local sk = k_session(sid)
local st = hget(sk, 'state')
if not st then return { 'err', 'not_found' } end
if st == 'ended' then return { 'err', 'conflict' } end
if ev == 'connected' then
  redis.call('HSET', sk, 'state', 'connected', 'connectedAt', now, 'lastActivityAt', now)
  st = 'connected'
elseif ev == 'disconnected' then
  redis.call('HSET', sk, 'state', 'disconnected', 'disconnectedAt', now)
  st = 'disconnected'
else
  redis.call('HSET', sk, 'lastActivityAt', now)
end
return { 'ok', st }
