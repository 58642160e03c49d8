-- Move one desktop to a new state (ARGV: prefix, desktop id, target, now ms, expected current
-- states as a comma list or '', reason, JSON object of extra fields, deleted retention s).
-- Target 'settled' picks in_use / assigned / ready from who holds the desktop.
-- Returns {'ok', from, to} or {'err', code, current state}.
local id, to, now, expect, reason, fields, retention = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local dk = k_desktop(id)
local from = hget(dk, 'state')
if not from or from == 'deleted' then return { 'err', 'not_found', from or '' } end
if expect ~= '' then
  local ok = false
  for s in string.gmatch(expect, '[^,]+') do if s == from then ok = true end end
  if not ok then return { 'err', 'conflict', from } end
end
local pool = hget(dk, 'pool')
local sid = hget(dk, 'session') or ''
local user = hget(dk, 'user') or ''
local assignment = hget(k_pool(pool), 'assignment') or 'floating'

if to == 'settled' then
  if session_live(sid) then to = 'in_use' elseif user ~= '' then to = 'assigned' else to = 'ready' end
end
if to == 'assigned' and user == '' then return { 'err', 'illegal_transition', from } end
if to == 'in_use' and not session_live(sid) then return { 'err', 'illegal_transition', from } end

local err = set_state(id, pool, from, to, now)
if err then return { 'err', err, from } end

if to == 'ready' or to == 'refreshing' or to == 'deleting' or to == 'error' or to == 'deleted' then
  if session_live(sid) then end_session(sid, now, reason) end
  redis.call('HSET', dk, 'session', '')
  if to == 'ready' or to == 'deleting' or to == 'deleted' or assignment ~= 'dedicated' then clear_owner(id, pool) end
end
if to == 'deleted' then
  redis.call('SREM', P .. 'pool:' .. pool .. ':desktops', id)
  local name, mac = hget(dk, 'name'), hget(dk, 'mac')
  if name and hget(P .. 'desktop-names', name) == id then redis.call('HDEL', P .. 'desktop-names', name) end
  if mac and hget(P .. 'macs', mac) == id then redis.call('HDEL', P .. 'macs', mac) end
  if retention > 0 then redis.call('EXPIRE', dk, retention) else redis.call('DEL', dk) end
end
if fields ~= '' then
  local t = cjson.decode(fields)
  for k, v in pairs(t) do
    if to ~= 'deleted' or retention > 0 then redis.call('HSET', dk, k, tostring(v)) end
  end
end
return { 'ok', from, to }
