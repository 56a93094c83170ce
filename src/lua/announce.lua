-- Tells every api process which release is live and which are kept, in the
-- same atomic step that changed them: their copies of the records are
-- trusted only while they hear this (src/genes/pushed.rs). The sequence
-- number lets a process that re-reads the state after subscribing ignore an
-- older message still in flight, and notice one it missed.
-- Message: "<seq>\n<live id or empty>\n<kept ids, oldest first, comma-separated>".
local function announce(seq_key, releases_key, live_key, channel)
  local seq = redis.call('INCR', seq_key)
  local live = redis.call('GET', live_key) or ''
  local kept = redis.call('ZRANGE', releases_key, 0, -1)
  redis.call('PUBLISH', channel, seq .. '\n' .. live .. '\n' .. table.concat(kept, ','))
end
