-- DELETE /jobs/<id>: a `queued` or `retrying` job ends `cancelled` and never
-- runs (a worker that receives its entry acknowledges it unrun).
-- KEYS[1] job, KEYS[2] delayed set, KEYS[3] events.
-- ARGV[1] now (RFC 3339), ARGV[2] TTL of finished records, ARGV[3] events maxlen.
-- Returns {'missing'}, {'cancelled_now', record} or {<current status>, record}.
local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing'} end
local job = cjson.decode(raw)
local s = job['status']
if s ~= 'queued' and s ~= 'retrying' then return {s, raw} end
job['status'] = 'cancelled'
job['finished_at'] = ARGV[1]
job['updated_at'] = ARGV[1]
job['next_attempt_at'] = nil
local new = cjson.encode(job)
redis.call('SET', KEYS[1], new, 'EX', ARGV[2])
redis.call('ZREM', KEYS[2], job['id'])
emit(KEYS[3], ARGV[3], job['id'], job['kind'], 'cancelled', new)
return {'cancelled_now', new}
