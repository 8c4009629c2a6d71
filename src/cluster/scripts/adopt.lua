-- Take over up to `batch` clients of a dead or departed incarnation: KEYS[1] = {p}:hb;
-- ARGV = prefix, me, name, dead id, token base, batch.
-- Only its reaper adopts; a reaper that is itself no longer alive is replaced by the caller.
-- Each client still owned by the dead node and online gets the caller as owner, a new token
-- (base .. index) and a capped deadline, watched by a detached watchdog on the caller:
--   - a client of a node that left cleanly: its exact last heartbeat (checkpointed at leave)
--     plus its timeout;
--   - a client already detached (adopted before, it never beat since): its cap, unchanged;
--   - a client of a dead node: now plus its timeout (its last heartbeat came before the node
--     died, so this is never early), or its last checkpoint plus timeout plus the checkpoint
--     period, if that is sooner.
-- Returns {'fenced'} if the caller is not alive; {'gone'} if nothing is left to adopt;
-- {'busy'} if a live peer reaps it; else {'more' | 'done', lost node name, then 6 values per
-- adopted client: proj, token, cap_ms, seen_ms, timeout_ms, addr}.
local P, me, name, dead, tokbase, batch = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local hb = KEYS[1]
local mine = redis.call('HGET', hb, me)
if not mine or not tonumber(mine) then return {'fenced'} end
if redis.call('HGET', hb, dead) ~= 'x' then return {'gone'} end
local nk = P .. ':node:' .. dead
local node = redis.call('HMGET', nk, 'reaper', 'name', 'state')
local reaper = node[1]
if reaper ~= me then
  local rv = reaper and reaper ~= '' and redis.call('HGET', hb, reaper)
  if rv and tonumber(rv) then return {'busy'} end
  redis.call('HSET', nk, 'reaper', me)
end
local lost, left = node[2] or dead, node[3] == 'left'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local projs = redis.call('SPOP', P .. ':own:' .. dead, tonumber(batch))
local out = {'more', lost}
for i, proj in ipairs(projs) do
  local key = P .. ':c:' .. proj
  local r = redis.call('HMGET', key, 'owner', 'state', 'timeout', 'seen', 'cp', 'cap', 'mode',
    'addr')
  if r[1] == dead and r[2] == 'online' then
    local timeout, seen, cp = tonumber(r[3]), tonumber(r[4]), tonumber(r[5]) or 0
    local cap
    if r[7] == 'detached' and r[6] and r[6] ~= '' then
      cap = tonumber(r[6])
    elseif left then
      cap = seen + timeout
    else
      cap = now + timeout
      if cp > 0 then cap = math.min(cap, seen + timeout + cp) end
    end
    local tok = tokbase .. i
    redis.call('HSET', key, 'owner', me, 'node', name, 'tok', tok, 'mode', 'detached',
      'cap', string.format('%.0f', cap), 'lost', lost)
    redis.call('SADD', P .. ':own:' .. me, proj)
    out[#out + 1] = proj
    out[#out + 1] = tok
    out[#out + 1] = string.format('%.0f', cap)
    out[#out + 1] = string.format('%.0f', seen)
    out[#out + 1] = string.format('%.0f', timeout)
    out[#out + 1] = r[8] or ''
  end
end
if redis.call('SCARD', P .. ':own:' .. dead) == 0 then
  redis.call('HDEL', hb, dead)
  out[1] = 'done'
  -- An incarnation nobody names any more (a restarted node's old one) is forgotten.
  if redis.call('HGET', P .. ':nodes', lost) ~= dead then redis.call('DEL', nk) end
end
return out
