-- POST /jobs/<id>/retry: a `failed` or `cancelled` job is queued again under
-- the same id, listed as the newest job.
-- KEYS[1] job, KEYS[2] stream, KEYS[3] jobs index, KEYS[4] events.
-- ARGV[1] now (RFC 3339), ARGV[2] now (ms), ARGV[3] TTL of unfinished
-- records, ARGV[4] events maxlen, ARGV[5] jobs index size, ARGV[6] max
-- backlog (0: none), ARGV[7] consumer group.
-- Returns {'missing'}, {'queued_now', record}, {<current status>, record},
-- or {'busy', backlog} when the queue is at its limit (nothing changes).
local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing'} end
local job = cjson.decode(raw)
local s = job['status']
if s ~= 'failed' and s ~= 'cancelled' then return {s, raw} end
local max = tonumber(ARGV[6])
if max > 0 then
  local backlog = backlog_of(KEYS[2], ARGV[7])
  if backlog >= max then return {'busy', tostring(backlog)} end
end
reset_job(job, ARGV[1])
local new = cjson.encode(job)
redis.call('SET', KEYS[1], new, 'EX', ARGV[3])
redis.call('XADD', KEYS[2], '*', 'job', job['id'], 'cmd', cjson.encode(job['params']),
  'retry', tostring(job['retries']))
redis.call('ZADD', KEYS[3], ARGV[2], job['id'])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -tonumber(ARGV[5]) - 1)
emit(KEYS[4], ARGV[4], job['id'], job['kind'], 'queued', new)
return {'queued_now', new}
