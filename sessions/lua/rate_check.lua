-- rate_check: a function the scripts that count a caller's request share (Go prepends
-- this file to them). A sliding window: the previous window's count weighs as much as
-- it still overlaps the last window length, plus the current window's count. The
-- caller's hash holds a count per window, under the window's index.
-- Returns 0 when the request is allowed (and counted), else ms until it may be retried.
local function rate_check(key, limit, window, now)
  limit, window = tonumber(limit), tonumber(window)
  if limit <= 0 then return 0 end
  local index = math.floor(now / window)
  local overlap = (window - (now - index * window)) / window -- of the previous window
  -- A window's field, formatted here: redis.call formats a number argument with %.17g,
  -- which costs Redis about twice as much as string.format's %d (callgrind).
  local function field(i) return string.format('%d', i) end
  local cur = redis.call('HINCRBY', key, field(index), '1')
  if cur == 1 then
    -- A new window: the counts of the two before the previous go (so that none is left
    -- behind when the caller skips a window), and the rest are kept until the next
    -- window ends.
    redis.call('HDEL', key, field(index - 2), field(index - 3))
    redis.call('PEXPIRE', key, 2 * window)
  end
  -- No window counts more than limit requests, so while this one's count fits with a
  -- full previous window, that window's count need not be read.
  if cur + limit * overlap <= limit then return 0 end
  local prev = tonumber(redis.call('HGET', key, field(index - 1))) or 0
  if prev * overlap + cur > limit then
    redis.call('HINCRBY', key, field(index), '-1') -- a refused request does not count
    return window - (now - index * window)
  end
  return 0
end
