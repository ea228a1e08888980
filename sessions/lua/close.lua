-- close: ends the agent's session under the operation that holds its lock: it leaves
-- the open set, the due set and the unmasking set at once (design §3.6); the final
-- record is returned for the answer and the audit line, and kept for joined requests
-- if any joined (keep_result.lua is prepended).
-- A mask CXone refused (reason "rejected") that had superseded a session whose unmask
-- was pending puts that session back as it was, due at once: the call it masked may
-- still be masked, and its unmask goes on.
-- Only the operation's holder may close (fencing).
--
-- KEYS[1] session hash   KEYS[2] due zset   KEYS[3] open zset   KEYS[4] unmasking set
-- KEYS[5] result key of the operation
-- ARGV[1] userId   ARGV[2] operation id   ARGV[3] close reason   ARGV[4] closed by ('' keeps)
-- ARGV[5] result code for joiners ('' success)   ARGV[6] result ttl ms
-- Returns {"closed", the session's fields (as_fields, store.go)}, or {"stale"}.
local h = KEYS[1]
local s, opId, joined, kept = read_session(h, 'opId', 'opJoined', 'superseded')
if opId ~= ARGV[2] then
  return {'stale'}
end
local now = string.format('%d', redis_now())
s.state, s.closeReason, s.unmaskedAt = 'closed', ARGV[3], now
if ARGV[4] ~= '' then s.unmaskedBy = ARGV[4] end
redis.call('DEL', h)
if kept and ARGV[3] == 'rejected' then
  redis.call('HSET', h, unpack(cjson.decode(kept)))
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('SREM', KEYS[4], ARGV[1])
end
local fields = as_fields('closed', s)
if joined then keep_result(KEYS[5], ARGV[5], {unpack(fields, 2)}, ARGV[6]) end
return fields
