-- Shared: a job's stop key (see src/jobs/stop.rs) for run round `round`:
-- 'requested' and when (a client asked to cancel the running job),
-- 'committed' and why (the job has passed its point of no return), or nil.
-- A value from an earlier round (the job was retried since) is nil.
local function stop_state(key, round)
  local v = redis.call('GET', key)
  if not v then return nil end
  local state, r, rest = string.match(v, '^(%a+) (%d+) (.*)$')
  if r ~= tostring(round) then return nil end
  return state, rest
end
