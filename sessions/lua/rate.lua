-- rate: one request of a caller against its rate limit, shared by all replicas, in one
-- round trip on Redis's clock (clock.lua and rate_check.lua are prepended).
--
-- KEYS[1] the caller's counter hash (a count per window, under the window's index)
-- ARGV[1] limit per window   ARGV[2] window ms
-- Returns 0 when the request is allowed (and counted), else ms until it may be retried.
return rate_check(KEYS[1], ARGV[1], ARGV[2], redis_now())
