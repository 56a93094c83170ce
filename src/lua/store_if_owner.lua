-- Stores the job record and announces it; optionally acknowledges the entry
-- and schedules the job's next run, all in one step. A `running` record
-- written after a client asked to stop the job keeps saying so (the worker
-- learns of it only at its next safe point); a final one removes the job's
-- stop key.
-- KEYS[1] stream, KEYS[2] job, KEYS[3] events, KEYS[4] delayed set, KEYS[5]
-- the job's stop key.
-- ARGV[4] record JSON, ARGV[5] TTL, ARGV[6] '1' to XACK, ARGV[7] events
-- maxlen, ARGV[8] job id, ARGV[9] kind, ARGV[10] status, ARGV[11] due time
-- (ms) of the next run or '', ARGV[12] the run's round. Returns 1, or 0 when
-- the entry is not ours.
local record = ARGV[4]
if ARGV[10] == 'running' then
  local state, asked = stop_state(KEYS[5], ARGV[12])
  if state == 'requested' then
    local job = cjson.decode(record)
    job['cancel_requested_at'] = asked
    record = cjson.encode(job)
  end
end
redis.call('SET', KEYS[2], record, 'EX', ARGV[5])
if ARGV[6] == '1' then redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) end
-- A finished job's record answers a cancel from now on: its stop key goes
-- (kept while `retrying`: the next run must still see a request or a commit).
local s = ARGV[10]
if s == 'done' or s == 'failed' or s == 'cancelled' then redis.call('DEL', KEYS[5]) end
if ARGV[11] ~= '' then redis.call('ZADD', KEYS[4], ARGV[11], ARGV[8]) end
emit(KEYS[3], ARGV[7], ARGV[8], ARGV[9], ARGV[10], record)
return 1
