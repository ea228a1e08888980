-- clock: a function every script that reads the time shares (Go prepends this file to
-- them): Redis's clock in ms, so that replicas whose clocks differ agree on deadlines.
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
