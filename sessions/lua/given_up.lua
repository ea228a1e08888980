-- given_up: how many open sessions have had their unmask given up (agents CXone may
-- still mask), for a gauge read at scrape time. The unmasking set is walked whole: it
-- holds only the unmasks not finished, a handful unless CXone is failing.
--
-- KEYS[1] unmasking set
-- ARGV[1] session key prefix (same hash tag)
-- Returns the count.
local n = 0
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HGET', ARGV[1] .. user, 'gaveUp') == '1' then
    n = n + 1
  end
end
return n
