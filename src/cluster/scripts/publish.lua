-- A batch of this node's transitions, in the order it decided them, each applied atomically
-- with its event: KEYS[1] = {p}:hb; ARGV = prefix, me (incarnation), name, stream max length,
-- then 8 values per transition: kind ('on' | 'off' | 'note'), proj, token, age_ms (how long ago it was
-- decided), timeout_ms, checkpoint period ms (0: none), addr, event JSON.
--
-- A note is an event that changes no claim (late, paused, flapping, outage...): only a stream
-- entry, of the kind given in the token's slot, with the proj given (empty for an outage).
-- An empty event JSON marks a quiet claim or offline (a flapping client's, muted): applied,
-- without a stream entry ('quiet').
--
-- A claim ('on') makes the caller the owner with its token. It is an event only if the client
-- was not online anywhere: a client online on another node moves without one (its old owner
-- is told to evict it). A claim decided before the one in force is stale (a replay after an
-- outage, or a slow queue): it changes nothing.
-- An offline ('off') applies only for the owner with the token of the claim in force: a stale
-- watchdog of a client that moved is fenced. An offline with an empty token is a goodbye the
-- client said to this node while another may own it: it ends the claim in force.
-- Both are idempotent: a replay of an applied one (a reply lost to a timeout) is 'dup'.
--
-- Returns {'node fenced'} if the caller is not alive (nothing applied), else one string per transition:
-- 'online <event id>', 'moved', 'refresh', 'offline <event id>', 'note <event id>', 'dup',
-- 'stale', 'fenced', 'quiet'.
local P, me, name, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local hb = KEYS[1]
local mine = redis.call('HGET', hb, me)
if not mine or not tonumber(mine) then return {'node fenced'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
-- The stream entry of an event, unless it is quiet.
local function entry(kind, proj, json)
  if json == '' then return 'quiet' end
  local id = redis.call('XADD', P .. ':events', 'MAXLEN', '~', maxlen, '*',
    'k', kind, 'p', proj, 'n', name, 'e', json)
  return kind .. ' ' .. id
end
local n = (#ARGV - 4) / 8
for i = 0, n - 1 do
  local b = 4 + i * 8
  local kind, proj, tok = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local key = P .. ':c:' .. proj
  local r = redis.call('HMGET', key, 'owner', 'tok', 'state', 'decided')
  local owner, rtok, st, decided = r[1], r[2], r[3], r[4]
  if kind == 'note' then
    out[#out + 1] = entry(tok, proj, ARGV[b + 8])
  elseif kind == 'on' then
    local when = now - tonumber(ARGV[b + 4])
    if rtok == tok then
      out[#out + 1] = 'dup'
    elseif decided and tonumber(decided) > when + 50 then
      -- (50 ms of slack: `when` is rebuilt from an age on every try, and a re-claim after
      -- fencing must not lose to the very claim it repeats.)
      out[#out + 1] = 'stale'
    else
      if owner and owner ~= me and st == 'online' then
        redis.call('SREM', P .. ':own:' .. owner, proj)
        redis.call('PUBLISH', P .. ':ctl:' .. owner, 'evict ' .. rtok .. ' ' .. proj)
      end
      redis.call('PERSIST', key)
      redis.call('HSET', key, 'owner', me, 'node', name, 'tok', tok, 'state', 'online',
        'decided', when, 'seen', when, 'timeout', ARGV[b + 5], 'cp', ARGV[b + 6],
        'addr', ARGV[b + 7], 'mode', 'conn', 'cap', '')
      redis.call('SADD', P .. ':own:' .. me, proj)
      if st == 'online' then
        if owner == me then out[#out + 1] = 'refresh' else out[#out + 1] = 'moved' end
      else
        redis.call('HSET', key, 'since', when)
        redis.call('ZADD', P .. ':online', 0, proj)
        out[#out + 1] = entry('online', proj, ARGV[b + 8])
      end
    end
  elseif tok == '' then
    -- A goodbye said to this node for a client it may not own: it ends the claim in force,
    -- if that claim was decided before the goodbye (a replay after the client came back
    -- changes nothing), and the owner is told to drop it.
    local when = now - tonumber(ARGV[b + 4])
    if st ~= 'online' or (decided and tonumber(decided) > when) then
      out[#out + 1] = 'dup'
    else
      if owner ~= me then
        redis.call('PUBLISH', P .. ':ctl:' .. owner, 'evict ' .. rtok .. ' ' .. proj)
      end
      redis.call('HSET', key, 'state', 'offline', 'decided', when)
      redis.call('SREM', P .. ':own:' .. owner, proj)
      redis.call('ZREM', P .. ':online', proj)
      redis.call('PEXPIRE', key, 86400000)
      out[#out + 1] = entry('offline', proj, ARGV[b + 8])
    end
  else
    if rtok ~= tok or owner ~= me then
      out[#out + 1] = 'fenced'
    elseif st ~= 'online' then
      out[#out + 1] = 'dup'
    else
      redis.call('HSET', key, 'state', 'offline')
      redis.call('SREM', P .. ':own:' .. me, proj)
      redis.call('ZREM', P .. ':online', proj)
      -- Kept a day for replays to find (idempotence), then collected.
      redis.call('PEXPIRE', key, 86400000)
      out[#out + 1] = entry('offline', proj, ARGV[b + 8])
    end
  end
end
return out
