-- Puts `retrying` jobs whose next run is due back on the stream; the record
-- stays `retrying` until a worker starts it. A job cancelled meanwhile was
-- removed from the set by the cancel; one whose record is gone is dropped.
-- KEYS[1] delayed set, KEYS[2] stream. ARGV[1] now (ms), ARGV[2] job key
-- prefix, ARGV[3] most to move. Returns how many left the set.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local raw = redis.call('GET', ARGV[2] .. id)
  if raw then
    local job = cjson.decode(raw)
    if job['status'] == 'retrying' then
      redis.call('XADD', KEYS[2], '*', 'job', id, 'cmd', cjson.encode(job['params']),
        'retry', tostring(tonumber(job['retries']) or 0))
    end
  end
end
return #ids
