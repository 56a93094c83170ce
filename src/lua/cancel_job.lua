-- DELETE /jobs/<id>. A `queued` or `retrying` job ends `cancelled` and never
-- runs (a worker that receives its entry acknowledges it unrun). A `running`
-- job is asked to stop: its stop key says so (and its record, in
-- `cancel_requested_at`), and its worker ends it `cancelled` at its next safe
-- point, unless it has passed its point of no return, which the key then
-- names (a `retrying` job past it is not cancelled either).
-- KEYS[1] job, KEYS[2] delayed set, KEYS[3] events, KEYS[4] the job's stop key.
-- ARGV[1] now (RFC 3339), ARGV[2] TTL of finished records, ARGV[3] events
-- maxlen, ARGV[4] TTL of the stop key.
-- Returns {'missing'}, {'cancelled_now', record}, {'requested', record},
-- {'committed', record, reason} or {<current status>, record}.
local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing'} end
local job = cjson.decode(raw)
local s = job['status']
local round = tostring(tonumber(job['retries']) or 0)
local state, rest = stop_state(KEYS[4], round)
-- A run that passed its point of no return and then failed (a swap the
-- replicas did not confirm in time) has made its change: not undone here.
if (s == 'running' or s == 'retrying') and state == 'committed' then
  return {'committed', raw, rest}
end
if s == 'running' then
  if state == 'requested' then return {'requested', raw} end
  redis.call('SET', KEYS[4], 'requested ' .. round .. ' ' .. ARGV[1], 'EX', ARGV[4])
  job['cancel_requested_at'] = ARGV[1]
  job['updated_at'] = ARGV[1]
  local new = cjson.encode(job)
  redis.call('SET', KEYS[1], new, 'KEEPTTL')
  emit(KEYS[3], ARGV[3], job['id'], job['kind'], 'running', new)
  return {'requested', new}
end
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
