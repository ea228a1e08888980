-- held: a function the begin scripts share (Go prepends this file to them). While an
-- operation holds the agent's lock (its lease, opUntil, not over), nothing may change:
-- a request identical to it (same kind and fingerprint) joins it, and the holder then
-- keeps its answer for joiners (finish, close); anything else must wait.
-- Returns {"join", operation id, ms left on its lease}, {"busy", ms left on the lease},
-- or nil when the lock is free.
local function held(h, kind, fp, op, opUntil, opFp, opId, now)
  if not (op and tonumber(opUntil) > now) then return nil end
  local left = string.format('%d', tonumber(opUntil) - now)
  if op == kind and opFp == fp then
    redis.call('HSET', h, 'opJoined', '1')
    return {'join', opId, left}
  end
  return {'busy', left}
end
