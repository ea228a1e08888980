-- claim: the sweeper's claim of due sessions (design §3.5). Each due session whose
-- lock is free is locked for the claiming replica with a lease, and its next look moved
-- to the lease's end, so that with N replicas each is worked once, and one whose
-- replica dies mid-claim is claimed again when the lease ends. A locked session is
-- looked at again when its lock's lease ends; a session not due after all (its deadline
-- was moved by a re-mask) goes back to its deadline; a due entry without a session is
-- dropped.
--
-- KEYS[1] due zset
-- ARGV[1] session key prefix (same hash tag)   ARGV[2] most sessions to claim
-- ARGV[3] lease ms   ARGV[4] operation id prefix (unique per call)
-- Returns {{the session's fields (session(), store.go), opId, closeAs, attempts,
-- retryFrom, confirmUntil, now}, ...}: each claimed session, with what the sweeper
-- decides by; now is Redis's clock, not the sweeper's own.
local now = redis_now()
local nowStr = string.format('%d', now)
local leaseEnd = string.format('%d', now + tonumber(ARGV[3]))
local n = tonumber(ARGV[2])
local claimed = {}
-- Every entry looked at leaves the due range (claimed, rescheduled or dropped), so look
-- again until n are claimed or none is left: entries skipped must not hold back the due
-- ones after them until the next tick. At most 10 n entries per call keep it short.
local looked = 0
while #claimed < n and looked < 10 * n do
  local due = redis.call('ZRANGE', KEYS[1], '-inf', nowStr, 'BYSCORE', 'LIMIT', 0, n - #claimed)
  if #due == 0 then break end
  for _, user in ipairs(due) do
    looked = looked + 1
    local h = ARGV[1] .. user
    local s = redis.call('HMGET', h, 'state', 'op', 'opUntil', 'expiresAt', 'confirmUntil')
    if not s[1] then
      redis.call('ZREM', KEYS[1], user)
    elseif s[2] and tonumber(s[3]) > now then
      redis.call('ZADD', KEYS[1], s[3], user)
    elseif (s[1] == 'masked' or s[1] == 'masking') and not s[5] and tonumber(s[4]) > now then
      redis.call('ZADD', KEYS[1], s[4], user)
    else
      redis.call('HSET', h, 'op', 'sweep', 'opId', ARGV[4] .. ':' .. looked, 'opFp', '', 'opUntil', leaseEnd)
      redis.call('ZADD', KEYS[1], leaseEnd, user)
      local c = session(h, 'opId', 'closeAs', 'attempts', 'retryFrom', 'confirmUntil')
      c[#c + 1] = nowStr
      claimed[#claimed + 1] = c
    end
  end
end
return claimed
