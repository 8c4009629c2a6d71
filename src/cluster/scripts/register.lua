-- A node incarnation joins: KEYS[1] = {p}:hb; ARGV = prefix, id, name, info (JSON).
-- A live earlier incarnation of the same name is the same node restarted (names are unique
-- in a cluster): it is declared dead at once, with the newcomer as its reaper, so that its
-- clients are taken over without waiting for cluster.dead_after.
-- Returns {replaced (0|1), previous id or ''}.
local P, id, name, info = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local hb = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prev = redis.call('HGET', P .. ':nodes', name)
local replaced = 0
if prev and prev ~= id then
  local v = redis.call('HGET', hb, prev)
  if v and tonumber(v) then
    redis.call('HSET', hb, prev, 'x')
    redis.call('HSET', P .. ':node:' .. prev, 'state', 'dead', 'reaper', id, 'ended', now)
    replaced = 1
  end
end
redis.call('HSET', P .. ':node:' .. id, 'name', name, 'state', 'alive', 'started', now,
  'info', info, 'reaper', '', 'ended', '')
redis.call('HSET', hb, id, 0)
redis.call('HSET', P .. ':nodes', name, id)
return {replaced, prev or ''}
