-- Records a job, indexes it, queues its command and announces it, in one
-- step: a job is never visible without its command or the reverse. With
-- KEYS[5], nothing happens unless that key exists (a plot needs a data set).
-- The queue's limit is checked here, in the same step as the XADD, so that
-- a burst of submissions cannot overshoot it (a backlog sampled every few
-- hundred ms let one through whole).
-- KEYS[1] job, KEYS[2] jobs index, KEYS[3] stream, KEYS[4] events, KEYS[5] optional.
-- ARGV[1] record, ARGV[2] TTL, ARGV[3] now (ms), ARGV[4] jobs index size,
-- ARGV[5] command JSON, ARGV[6] events maxlen, ARGV[7] job id, ARGV[8] kind,
-- ARGV[9] max backlog (0: none), ARGV[10] consumer group.
-- Returns {'queued'}, {'no_data'} when KEYS[5] is missing, or {'busy',
-- backlog} when the backlog is at the limit already; only 'queued' writes.
if KEYS[5] and redis.call('EXISTS', KEYS[5]) == 0 then return {'no_data'} end
local max = tonumber(ARGV[9])
if max > 0 then
  local backlog = backlog_of(KEYS[3], ARGV[10])
  if backlog >= max then return {'busy', tostring(backlog)} end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[7])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[4]) - 1)
redis.call('XADD', KEYS[3], '*', 'job', ARGV[7], 'cmd', ARGV[5])
emit(KEYS[4], ARGV[6], ARGV[7], ARGV[8], 'queued', ARGV[1])
return {'queued'}
