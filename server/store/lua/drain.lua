-- A host's drain record, changed only here so that a request (start, cancel) and the drain
-- reconciler's progress never overwrite each other. ARGV: prefix, op, "provider/host", id, now, ...
--   start  (id = new id, requestedBy, then desktop id / JSON pairs): a running drain is kept and
--          its id returned as {0, id}; otherwise a fresh record replaces the old one: {1, id}.
--   finish (id or '' for whichever runs, state, reason): running -> state; 1 if changed.
--   desktop (id, desktop id, JSON): one desktop's progress, only into the drain with that id.
local op, host, id, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local rec = P .. 'drain:' .. host
local desktops = rec .. ':desktops'
local cur_id = redis.call('HGET', rec, 'id')
local cur_state = redis.call('HGET', rec, 'state')

if op == 'start' then
  if cur_state == 'running' then return {0, cur_id} end
  redis.call('DEL', rec, desktops)
  local provider, name = string.match(host, '^([^/]+)/(.+)$')
  redis.call('HSET', rec, 'id', id, 'provider', provider, 'host', name, 'state', 'running', 'requestedBy', ARGV[6],
    'requestedAt', now, 'updatedAt', now, 'finishedAt', 0, 'reason', '')
  for i = 7, #ARGV, 2 do redis.call('HSET', desktops, ARGV[i], ARGV[i + 1]) end
  redis.call('SADD', P .. 'drains', host)
  return {1, id}
elseif op == 'finish' then
  if cur_state ~= 'running' or (id ~= '' and id ~= cur_id) then return 0 end
  redis.call('HSET', rec, 'state', ARGV[6], 'reason', ARGV[7], 'finishedAt', now, 'updatedAt', now)
  return 1
elseif op == 'desktop' then
  if cur_id ~= id then return 0 end
  redis.call('HSET', desktops, ARGV[6], ARGV[7])
  redis.call('HSET', rec, 'updatedAt', now)
  return 1
end
return redis.error_reply('unknown drain op ' .. tostring(op))
