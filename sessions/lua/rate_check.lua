-- rate_check: a function the scripts that count a caller's request share (Go prepends
-- this file to them). A sliding window: the previous window's count weighs as much as
-- it still overlaps the last window length, plus the current window's count.
-- Returns 0 when the request is allowed (and counted), else ms until it may be retried.
local function rate_check(key, limit, window, now)
  limit, window = tonumber(limit), tonumber(window)
  if limit <= 0 then return 0 end
  local index = math.floor(now / window)
  local c = redis.call('HMGET', key, 'win', 'cur', 'prev')
  local win, cur, prev = tonumber(c[1]), tonumber(c[2]) or 0, tonumber(c[3]) or 0
  if win == nil or win < index - 1 then
    cur, prev = 0, 0
  elseif win == index - 1 then
    cur, prev = 0, cur
  end
  local elapsed = now - index * window
  if prev * (window - elapsed) / window + cur + 1 > limit then
    return window - elapsed
  end
  redis.call('HSET', key, 'win', index, 'cur', cur + 1, 'prev', prev)
  if win ~= index then
    -- Once per window is enough: the counter is needed until the next window ends.
    redis.call('PEXPIRE', key, 2 * window)
  end
  return 0
end
