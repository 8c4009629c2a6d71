-- Record the last heartbeat of some of this node's clients: KEYS[1] = {p}:hb;
-- ARGV = prefix, me, then 3 values per client: proj, token, last seen (ms since the epoch).
-- Written for clients with long timeouts (so a node's death bounds their deadline) and for
-- every client at a clean leave (so peers take over exact deadlines). Only the owner with the
-- token in force writes. Returns the number written, or -1 if the caller is fenced.
local P, me = ARGV[1], ARGV[2]
local hb = KEYS[1]
local mine = redis.call('HGET', hb, me)
if not mine or not tonumber(mine) then return -1 end
local n = 0
for b = 3, #ARGV - 2, 3 do
  local key = P .. ':c:' .. ARGV[b]
  local r = redis.call('HMGET', key, 'owner', 'tok', 'state')
  if r[1] == me and r[2] == ARGV[b + 1] and r[3] == 'online' then
    redis.call('HSET', key, 'seen', ARGV[b + 2])
    n = n + 1
  end
end
return n
