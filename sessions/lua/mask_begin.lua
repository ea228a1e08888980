-- mask_begin: the write-ahead of a mask (design §3.1-§3.3), and the agent's operation
-- lock. Opens the agent's session in state "masking" with its deadline or, when the
-- agent already has an open session, refreshes it (re-mask: same id and maskedAt, new
-- deadline). A session whose unmask is still pending is superseded by a new session, so
-- that the pending unmask can never close the new mask; the superseded session is kept
-- in the new one's "superseded" field until CXone answers, for close.lua to put back if
-- CXone refuses the mask (the call it masked may still be masked).
-- While another operation holds the agent's lock (opUntil in the future) nothing
-- changes: an identical mask (same fingerprint) joins it, anything else must wait
-- (held.lua, prepended with clock.lua, rate_check.lua and Go's session helpers).
-- Times come from Redis's clock, so replicas with skewed clocks agree.
--
-- KEYS[1] session hash   KEYS[2] due zset   KEYS[3] open zset   KEYS[4] unmasking set   KEYS[5] the caller's rate counter
-- ARGV[1] userId   ARGV[2] id for a new session   ARGV[3] ttl ms   ARGV[4] caller
-- ARGV[5] reason ('' keeps the current one)   ARGV[6] operation id   ARGV[7] lease ms
-- ARGV[8] fingerprint of the request
-- ARGV[9] the caller's limit per window (0: not counted here)   ARGV[10] window ms
-- Returns {"rate_limited", ms to wait},
-- {"created"|"refreshed"|"superseded", the session's fields (as_fields, store.go)},
-- {"join", operation id, ms left on its lease} or {"busy", ms left on the lease}.
local now = redis_now()
-- The caller's rate first (rate_check.lua is prepended): a refused request changes nothing.
local wait = rate_check(KEYS[5], ARGV[9], ARGV[10], now)
if wait > 0 then
  return {'rate_limited', string.format('%d', wait)}
end
local h = KEYS[1]
-- The agent's lock and session in one read.
local s, op, opUntil, opFp, opId = read_session(h, 'op', 'opUntil', 'opFp', 'opId')
local waiting = held(h, 'mask', ARGV[8], op, opUntil, opFp, opId, now)
if waiting then return waiting end
local outcome = 'refreshed'
local deadline = string.format('%d', now + tonumber(ARGV[3]))
-- One HSET for all the fields the mask writes.
local set = {'expiresAt', deadline, 'op', 'mask', 'opId', ARGV[6], 'opFp', ARGV[8],
  'opUntil', string.format('%d', now + tonumber(ARGV[7]))}
local superseded
if (not s.state) or s.state == 'unmasking' then
  if s.state then
    -- The session whose unmask is pending goes, and the agent leaves the unmasking set.
    -- (Without a state there is no session: a script never leaves a hash without one.)
    -- Its fields but the lock's (and an older session it kept) stay in the new session.
    outcome, superseded = 'superseded', s.id
    local all, kept = redis.call('HGETALL', h), {}
    local drop = {op = true, opId = true, opFp = true, opUntil = true, opJoined = true, superseded = true, supersededId = true}
    for i = 1, #all, 2 do
      if not drop[all[i]] then
        kept[#kept + 1] = all[i]
        kept[#kept + 1] = all[i + 1]
      end
    end
    set[#set + 1] = 'superseded'
    set[#set + 1] = cjson.encode(kept)
    set[#set + 1] = 'supersededId'
    set[#set + 1] = superseded
    redis.call('DEL', h)
    redis.call('SREM', KEYS[4], ARGV[1])
  else
    outcome = 'created'
  end
  redis.call('ZADD', KEYS[3], 0, ARGV[1])
  s = {id = ARGV[2], user = ARGV[1], state = 'masking', maskedAt = string.format('%d', now),
    maskedBy = ARGV[4], reason = ARGV[5], supersededId = superseded}
  for field, value in pairs(s) do
    set[#set + 1] = field
    set[#set + 1] = value
  end
elseif ARGV[5] ~= '' then
  s.reason = ARGV[5]
  set[#set + 1] = 'reason'
  set[#set + 1] = ARGV[5]
end
s.expiresAt = deadline
redis.call('HSET', h, unpack(set))
redis.call('ZADD', KEYS[2], deadline, ARGV[1])
return as_fields(outcome, s)
