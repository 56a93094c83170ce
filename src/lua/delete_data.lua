-- Removes every kept release and every record; a load staging meanwhile
-- finds the generation changed at its swap and stores nothing.
-- KEYS: current, releases, generation, records, ids ever seen, the
-- announcements' sequence number. ARGV: release prefix, the announcements'
-- channel.
-- Returns {records of the live release, releases removed}.
redis.call('INCR', KEYS[3])
local n = 0
local live = redis.call('GET', KEYS[1])
if live then
  local meta = redis.call('GET', ARGV[1] .. live .. ':meta')
  if meta then n = cjson.decode(meta)['records'] or 0 end
end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, id in ipairs(ids) do
  for _, p in ipairs(parts) do redis.call('UNLINK', ARGV[1] .. id .. ':' .. p) end
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[4], KEYS[5])
announce(KEYS[6], KEYS[2], KEYS[1], ARGV[2])
return {n, #ids}
