-- Compare-and-set death: KEYS[1] = {p}:hb; ARGV = prefix, me, peer, seen counter.
-- Succeeds only if the caller is alive and the peer's counter is still the one the caller saw
-- unchanged for cluster.dead_after: a peer that renewed meanwhile stays alive. The caller
-- becomes the peer's reaper (it takes over its clients).
-- Returns -1 if the caller is fenced, 0 if the peer renewed or is gone, 1 if declared dead.
local P, me, peer, seen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local hb = KEYS[1]
local mine = redis.call('HGET', hb, me)
if not mine or not tonumber(mine) then return -1 end
if redis.call('HGET', hb, peer) ~= seen then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', hb, peer, 'x')
redis.call('HSET', P .. ':node:' .. peer, 'state', 'dead', 'reaper', me, 'ended', now)
return 1
