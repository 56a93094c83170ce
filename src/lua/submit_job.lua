-- Shared: records a job, indexes it, queues its command and announces it, in
-- one step: a job is never visible without its command or the reverse. With
-- K[5], nothing happens unless that key exists (a plot needs a data set).
-- The queue's limit is checked here, in the same step as the XADD, so that
-- a burst of submissions cannot overshoot it (a backlog sampled every few
-- hundred ms let one through whole).
-- K[1] job, K[2] jobs index, K[3] stream, K[4] events, K[5] optional.
-- A[1] record, A[2] TTL, A[3] now (ms), A[4] jobs index size,
-- A[5] command JSON, A[6] events maxlen, A[7] job id, A[8] kind,
-- A[9] max backlog (0: none), A[10] consumer group, A[11] the W3C
-- traceparent of the submitting request, or '' (none: traces are off).
-- Returns {'queued'}, {'no_data'} when K[5] is missing, or {'busy',
-- backlog} when the backlog is at the limit already; only 'queued' writes.
local function submit_job(K, A)
  if K[5] and redis.call('EXISTS', K[5]) == 0 then return {'no_data'} end
  local max = tonumber(A[9])
  if max > 0 then
    local backlog = backlog_of(K[3], A[10])
    if backlog >= max then return {'busy', tostring(backlog)} end
  end
  redis.call('SET', K[1], A[1], 'EX', A[2])
  redis.call('ZADD', K[2], A[3], A[7])
  redis.call('ZREMRANGEBYRANK', K[2], 0, -tonumber(A[4]) - 1)
  if A[11] ~= '' then
    redis.call('XADD', K[3], '*', 'job', A[7], 'cmd', A[5], 'trace', A[11])
  else
    redis.call('XADD', K[3], '*', 'job', A[7], 'cmd', A[5])
  end
  emit(K[4], A[6], A[7], A[8], 'queued', A[1])
  return {'queued'}
end
