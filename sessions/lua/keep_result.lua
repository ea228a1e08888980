-- keep_result: a function finish and close share (Go prepends this file to them), which
-- they call when requests joined the operation (the begin scripts set opJoined on its
-- lock): keeps the operation's answer for them, its result code and the session's
-- fields (session(), store.go; '' for a missing one), for ttl ms.
local function keep_result(key, code, fields, ttl)
  local s = {}
  for i, v in ipairs(fields) do s[i] = v or '' end
  redis.call('SET', key, cjson.encode({code = code, session = s}), 'PX', ttl)
end
