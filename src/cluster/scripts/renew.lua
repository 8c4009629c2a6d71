-- Lease renewal: KEYS[1] = {p}:hb; ARGV = prefix, id.
-- {p}:hb maps each live incarnation to its renewal counter, and each dead or departed one
-- whose clients are not all taken over yet to 'x'. A node whose field is gone or 'x' was
-- declared dead (or left): it is fenced, and must join again under a new id.
-- Returns {'fenced'}, or {'ok', then the field/value pairs of {p}:hb}.
local hb, id = KEYS[1], ARGV[2]
local v = redis.call('HGET', hb, id)
if not v or not tonumber(v) then return {'fenced'} end
redis.call('HINCRBY', hb, id, 1)
local all = redis.call('HGETALL', hb)
table.insert(all, 1, 'ok')
return all
