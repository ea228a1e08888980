-- rate: one request of a caller against its rate limit, shared by all replicas, in one
-- round trip on Redis's clock (rate_check.lua is prepended).
--
-- KEYS[1] the caller's counter hash (fields win, cur, prev)
-- ARGV[1] limit per window   ARGV[2] window ms
-- Returns 0 when the request is allowed (and counted), else ms until it may be retried.
local t = redis.call('TIME')
return rate_check(KEYS[1], ARGV[1], ARGV[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
