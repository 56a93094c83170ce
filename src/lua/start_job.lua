-- A worker starts the job of an entry it owns: the record turns `running`
-- (attempts + 1) unless the job is finished (cancelled, say) or the entry is
-- stale (the job was queued again since: its `retries` moved on). A job a
-- client asked to stop while an earlier run of it was under way (a run that
-- then died) ends `cancelled` here, unrun.
-- KEYS[1] stream, KEYS[2] job, KEYS[3] events, KEYS[4] the job's stop key.
-- ARGV[4] now (RFC 3339), ARGV[5] TTL, ARGV[6] events maxlen, ARGV[7] the
-- entry's `retry` field, ARGV[8] TTL of finished records. Returns 0 (not
-- ours), {'missing'}, {'skip', record}, {'cancelled', record} or
-- {'started', record}.
local raw = redis.call('GET', KEYS[2])
if not raw then return {'missing'} end
local job = cjson.decode(raw)
local s = job['status']
if s == 'done' or s == 'failed' or s == 'cancelled'
    or (tonumber(job['retries']) or 0) ~= (tonumber(ARGV[7]) or 0) then
  return {'skip', raw}
end
local state, asked = stop_state(KEYS[4], ARGV[7])
if state == 'requested' then
  job['status'] = 'cancelled'
  job['cancel_requested_at'] = asked
  job['finished_at'] = ARGV[4]
  job['updated_at'] = ARGV[4]
  job['next_attempt_at'] = nil
  job['progress'] = nil
  local new = cjson.encode(job)
  redis.call('SET', KEYS[2], new, 'EX', ARGV[8])
  redis.call('DEL', KEYS[4])
  emit(KEYS[3], ARGV[6], job['id'], job['kind'], 'cancelled', new)
  return {'cancelled', new}
end
job['status'] = 'running'
job['attempts'] = (tonumber(job['attempts']) or 0) + 1
job['started_at'] = ARGV[4]
job['updated_at'] = ARGV[4]
job['error'] = nil
job['next_attempt_at'] = nil
job['progress'] = nil
local new = cjson.encode(job)
redis.call('SET', KEYS[2], new, 'EX', ARGV[5])
emit(KEYS[3], ARGV[6], job['id'], job['kind'], 'running', new)
return {'started', new}
