-- A clean leave: KEYS[1] = {p}:hb; ARGV = prefix, me.
-- The node stops renewing and is marked 'left'; its clients wait for a reaper (any live
-- peer), which takes them over with their exact deadlines (checkpointed just before).
-- Returns 1, or -1 if the caller was already fenced.
local P, me = ARGV[1], ARGV[2]
local hb = KEYS[1]
local mine = redis.call('HGET', hb, me)
if not mine or not tonumber(mine) then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', hb, me, 'x')
redis.call('HSET', P .. ':node:' .. me, 'state', 'left', 'reaper', '', 'ended', now)
return 1
