-- Shared: the consumer group's backlog, lag + pending, counted as
-- `Pipeline::backlog` (GET /jobs/stats, the gate) counts it: entries not yet
-- delivered to any consumer, plus entries delivered and not acknowledged.
-- Redis cannot tell the lag after some deletions (nil): the stream's length
-- counts then. No stream yet: 0. No group yet: every entry is undelivered.
local function backlog_of(stream, group)
  local groups = redis.pcall('XINFO', 'GROUPS', stream)
  if groups.err then return 0 end
  for _, g in ipairs(groups) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == group then
      local lag = f['lag']
      if not lag then lag = redis.call('XLEN', stream) end
      return lag + f['pending']
    end
  end
  return redis.call('XLEN', stream)
end
