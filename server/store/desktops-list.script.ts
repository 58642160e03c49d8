// The helpdesk's desktop table at scale (GET /desktops?limit=...): filter, search and sort run
// inside Redis over the pool's index sets (pool:<p>:desktops or pool:<p>:state:<s>), reading only
// the few fields a row is sorted and searched by (HMGET), and only the page's ids come back.
// At 10,000 desktops this is one round trip of ~10-30 ms in Redis instead of 10,000 HGETALLs
// crossing the network (measured by bench/desktops-page.bench.ts, docs/benchmarks.md).
//
// ARGV: prefix, pool ('' = every pool), state, user, host, name (substring), q (lower-case
// substring of name, pool, state, user, host or image), sort field, order (asc|desc), offset,
// limit. Returns { total, id... } for the page.
export const LIST_DESKTOPS = `
local prefix, pool, state, user, host, name, q, sort, order = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local offset, limit = tonumber(ARGV[10]), tonumber(ARGV[11])
local pools
if pool ~= '' then pools = { pool } else pools = redis.call('SMEMBERS', prefix .. 'pools') end
local cols = { name = 1, pool = 2, state = 3, user = 4, host = 5, image = 6 }
local col = cols[sort] or 1
-- The six fields rows are filtered, searched and sorted by (one HMGET per desktop).
local want = { 'name', 'pool', 'state', 'user', 'host', 'image' }
local all = q ~= ''
local rows = {}
for _, p in ipairs(pools) do
  local set
  if state ~= '' then set = prefix .. 'pool:' .. p .. ':state:' .. state else set = prefix .. 'pool:' .. p .. ':desktops' end
  for _, id in ipairs(redis.call('SMEMBERS', set)) do
    local f = redis.call('HMGET', prefix .. 'desktop:' .. id, unpack(want))
    if f[1] and f[3] ~= 'deleted' then
      for i = 1, 6 do f[i] = f[i] or '' end
      local keep = (user == '' or f[4] == user) and (host == '' or f[5] == host)
        and (name == '' or string.find(f[1], name, 1, true) ~= nil)
      if keep and all then
        keep = string.find(string.lower(f[1] .. '\\n' .. f[2] .. '\\n' .. f[3] .. '\\n' .. f[4] .. '\\n' .. f[5] .. '\\n' .. f[6]), q, 1, true) ~= nil
      end
      -- One string per row, sorted by Lua's own string comparison (no comparator call per pair):
      -- sort column, then name, then id.
      if keep then rows[#rows + 1] = f[col] .. '\\1' .. f[1] .. '\\1' .. id end
    end
  end
end
table.sort(rows)
local out = { #rows }
local from, to, step = offset + 1, math.min(#rows, offset + limit), 1
if order == 'desc' then from, to, step = #rows - offset, math.max(1, #rows - offset - limit + 1), -1 end
for i = from, to, step do
  local r = rows[i]
  out[#out + 1] = string.sub(r, (string.find(r, '[^\\1]*$')))
end
return out
`;
