-- unmask_begin: marks the agent's open session "unmasking" before CXone is asked to
-- unmask (design §3.4), and takes the agent's operation lock. A forced unmask that finds
-- no session opens one, "unmasking" from the start and without maskedAt (the gateway
-- never saw the mask), so that it holds the lock like any unmask and is retried and
-- confirmed like one. Nothing changes when there is no open session (unforced), when
-- the caller named another session than the open one
-- (sessionId precondition), or while another operation holds the lock: an identical
-- unmask joins it, anything else must wait (held.lua, prepended with clock.lua,
-- rate_check.lua and Go's session helpers). The session is due when the lock's lease
-- ends: an unmask whose replica dies, before or after asking CXone, or that cannot
-- record its outcome, is finished by a sweeper then, not at the mask's deadline. The
-- confirmation of a mask CXone accepted (202) ends here.
--
-- KEYS[1] session hash   KEYS[2] due zset   KEYS[3] unmasking set   KEYS[4] the caller's rate counter
-- KEYS[5] open zset
-- ARGV[1] userId   ARGV[2] expected session id ('' for any)   ARGV[3] caller
-- ARGV[4] operation id   ARGV[5] lease ms   ARGV[6] fingerprint of the request
-- ARGV[7] the caller's limit per window (0: not counted here)   ARGV[8] window ms
-- ARGV[9] id for a forced unmask's session ('' when not forced)
-- Returns {"rate_limited", ms to wait}, {"ok"|"mismatch"|"forced", the session's fields (as_fields, store.go)}, {"not_masked"},
-- {"join", operation id, ms left on its lease} or {"busy", ms left on the lease}.
local now = redis_now()
-- The caller's rate first (rate_check.lua is prepended): a refused request changes nothing.
local wait = rate_check(KEYS[4], ARGV[7], ARGV[8], now)
if wait > 0 then
  return {'rate_limited', string.format('%d', wait)}
end
local h = KEYS[1]
-- The agent's lock and session in one read.
local s, op, opUntil, opFp, opId, confirming = read_session(h, 'op', 'opUntil', 'opFp', 'opId', 'confirmUntil')
local outcome = 'ok'
if not s.id then
  if ARGV[9] == '' then return {'not_masked'} end
  -- No session, so no lock either: the forced unmask's session is new, and the
  -- caller's expected id has nothing to name.
  outcome, s = 'forced', {id = ARGV[9], user = ARGV[1]}
  redis.call('ZADD', KEYS[5], 0, ARGV[1])
else
  local waiting = held(h, 'unmask', ARGV[6], op, opUntil, opFp, opId, now)
  if waiting then return waiting end
end
if outcome == 'ok' and ARGV[2] ~= '' and ARGV[2] ~= s.id then
  outcome = 'mismatch'
else
  s.state, s.unmaskedBy = 'unmasking', ARGV[3]
  local leaseEnd = string.format('%d', now + tonumber(ARGV[5]))
  -- id and user are the session's own, written again for a forced unmask's new one.
  redis.call('HSET', h, 'id', s.id, 'user', s.user, 'state', s.state, 'unmaskedBy', s.unmaskedBy,
    'closeAs', 'unmasked', 'op', 'unmask', 'opId', ARGV[4], 'opFp', ARGV[6], 'opUntil', leaseEnd)
  redis.call('ZADD', KEYS[2], leaseEnd, ARGV[1])
  redis.call('SADD', KEYS[3], ARGV[1])
  if confirming then
    -- A mask's 202 being confirmed: from now on the unmask's outcome is what counts. A
    -- sweeper that finds this session after the lease (its replica died, or could not
    -- record the outcome) must unmask, not find the mask not yet carried out and close.
    redis.call('HDEL', h, 'confirmUntil')
  end
end
return as_fields(outcome, s)
