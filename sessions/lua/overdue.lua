-- overdue: how far past its due time, by Redis's clock, the session the sweepers
-- should have looked at first is (clock.lua is prepended): 0 while they keep up, since
-- each claim moves what it takes to a later time. For a gauge read at scrape time.
--
-- KEYS[1] due zset
-- Returns ms.
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then
  return 0
end
return math.max(0, redis_now() - tonumber(first[2]))
