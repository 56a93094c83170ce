-- Claims one tick of a schedule and queues its job, in one step: however
-- many replicas ask for the same tick, one queues the job and the others
-- hear 'taken'; and a replica that dies cannot leave a tick claimed with
-- nothing queued (a script runs whole or, if its process dies first, not
-- at all), so the next replica to look claims it.
-- A tick is claimed only if it is later than the one claimed last: a slow
-- replica cannot claim an old tick again after a newer one ran.
-- KEYS[1..4] and ARGV[1..11] as submit_job takes them (a scheduled job needs
-- no data set, so there is no KEYS[5] for it); KEYS[5] the schedule's hash:
-- tick (ms) and what came of it: outcome ('queued' or 'busy'), job_id,
-- backlog and max (the queue's, when busy). ARGV[12] the tick (ms).
-- Returns {'taken'} when this tick or a later one was claimed already, else
-- submit_job's reply, which is also written to the hash as the tick's outcome.
local tick = tonumber(ARGV[12])
local last = tonumber(redis.call('HGET', KEYS[5], 'tick') or '')
if last and last >= tick then return {'taken'} end
local r = submit_job({KEYS[1], KEYS[2], KEYS[3], KEYS[4]}, ARGV)
local job_id, backlog = '', ''
if r[1] == 'queued' then job_id = ARGV[7] else backlog = r[2] or '' end
-- Written after the job, so that an error in submit_job leaves the tick
-- unclaimed for the next look rather than claimed for nothing.
redis.call('HSET', KEYS[5], 'tick', ARGV[12], 'outcome', r[1],
  'job_id', job_id, 'backlog', backlog, 'max', ARGV[9])
return r
