-- finish: ends an operation on the agent's session without closing it: releases the
-- operation lock, applies the outcome, schedules the sweeper's next look, and keeps the
-- answer for requests that joined the operation, if any did (keep_result.lua is
-- prepended). Only the operation's holder may finish it (fencing): a holder whose lease
-- passed and was taken over changes nothing.
--
-- KEYS[1] session hash   KEYS[2] due zset   KEYS[3] result key of the operation
-- KEYS[4] unmasking set
-- ARGV[1] operation id
-- ARGV[2] result code for joiners ('' success)   ARGV[3] result ttl ms
-- ARGV[4] state ('' keeps)
-- ARGV[5] next look: '' keeps, 'none' removes, 'expiry' at expiresAt, else ms from now
-- ARGV[6] confirmation: '' keeps, '0' clears, else a window in ms to confirm a 202 in
-- ARGV[7] retries: '' keeps, 'inc' counts a failed unmask (retryFrom set on the first)
-- ARGV[8] closeAs ('' keeps)   ARGV[9] unmaskedBy ('' keeps)   ARGV[10] '1' marks a give-up
-- ARGV[11] '1' keeps the session that the session's own mask superseded
-- Returns {"ok"} or {"stale"}: its caller knows what the session is now, the session
-- it locked with the state and unmaskedBy given here (finishing.apply in store.go).
local h = KEYS[1]
local op = redis.call('HMGET', h, 'opId', 'user', 'opJoined')
if op[1] ~= ARGV[1] then
  return {'stale'}
end
local user = op[2]
-- Redis's clock, read only when a time is written.
local now
local function clock()
  now = now or redis_now()
  return now
end
-- One HDEL and one HSET for the fields finish removes and writes. CXone has answered
-- (or will not be asked again): a session the mask superseded is no longer kept, unless
-- this was a re-mask that masked nothing, which says nothing of that mask's outcome
-- (its replica died before it could record it): the session goes on naming the one it
-- superseded in its audit lines until an operation that may have masked or unmasked.
local del = {'op', 'opId', 'opFp', 'opUntil', 'opJoined'}
if ARGV[11] ~= '1' then
  del[#del + 1] = 'superseded'
  del[#del + 1] = 'supersededId'
end
local set = {}
local function put(field, value)
  set[#set + 1] = field
  set[#set + 1] = value
end
if ARGV[4] ~= '' then put('state', ARGV[4]) end
if ARGV[4] == 'unmasking' then
  -- Among the unmasks not finished, also an expiry's, which no unmask_begin marked.
  redis.call('SADD', KEYS[4], user)
end
if ARGV[6] == '0' then
  del[#del + 1] = 'confirmUntil'
elseif ARGV[6] ~= '' then
  put('confirmUntil', string.format('%d', clock() + tonumber(ARGV[6])))
end
if ARGV[7] == 'inc' then
  redis.call('HINCRBY', h, 'attempts', 1)
  redis.call('HSETNX', h, 'retryFrom', string.format('%d', clock()))
end
if ARGV[8] ~= '' then put('closeAs', ARGV[8]) end
if ARGV[9] ~= '' then put('unmaskedBy', ARGV[9]) end
if ARGV[10] == '1' then put('gaveUp', '1') end
redis.call('HDEL', h, unpack(del))
if #set > 0 then redis.call('HSET', h, unpack(set)) end
if ARGV[5] == 'none' then
  redis.call('ZREM', KEYS[2], user)
elseif ARGV[5] == 'expiry' then
  redis.call('ZADD', KEYS[2], redis.call('HGET', h, 'expiresAt'), user)
elseif ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], string.format('%d', clock() + tonumber(ARGV[5])), user)
end
if op[3] then keep_result(KEYS[3], ARGV[2], session(h), ARGV[3]) end
return {'ok'}
