-- Reserves room under a user's hard quota for one upload, atomically for every replica.
-- KEYS[1]: the folder's count hash (used files countedAt gen; res:<id> = "<bytes>:<expiresAtMs>").
-- ARGV: id, need, want, hard, ttl ms. Returns {status, ours, used, others}.
-- Order: drop expired reservations (their broker died) -> unknown count: {-1} (the caller
-- counts the folder and asks again) -> room = hard - used - others - ours -> need > room:
-- refused {0} -> granted: need, plus as much of want - need as the room holds (an upload that
-- got room ahead finishes; one that started later near the limit is refused early rather than
-- several failing half-way). need = want = 0 renews.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = 'res:' .. ARGV[1]
local need, want, hard, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local all = redis.call('HGETALL', KEYS[1])
local used, others, ours = nil, 0, 0
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  if f == 'used' then
    used = tonumber(v)
  elseif string.sub(f, 1, 4) == 'res:' then
    local sep = string.find(v, ':', 1, true)
    local bytes, exp = tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
    if exp <= now then
      redis.call('HDEL', KEYS[1], f)
    elseif f == id then
      ours = bytes
    else
      others = others + bytes
    end
  end
end
if used == nil then return { -1, ours, 0, others } end
local room = hard - used - others - ours
if need > room then return { 0, ours, used, others } end
local extra = math.min(want - need, room - need)
if extra < 0 then extra = 0 end
ours = ours + need + extra
redis.call('HSET', KEYS[1], id, ours .. ':' .. (now + ttl))
redis.call('EXPIRE', KEYS[1], 2592000)
return { 1, ours, used, others }
