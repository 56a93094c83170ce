-- Records a job, indexes it, queues its command and announces it, in one
-- step: a job is never visible without its command or the reverse. With
-- KEYS[5], nothing happens unless that key exists (a plot needs a data set).
-- KEYS[1] job, KEYS[2] jobs index, KEYS[3] stream, KEYS[4] events, KEYS[5] optional.
-- ARGV[1] record, ARGV[2] TTL, ARGV[3] now (ms), ARGV[4] jobs index size,
-- ARGV[5] command JSON, ARGV[6] events maxlen, ARGV[7] job id, ARGV[8] kind.
-- Returns 1, or 0 when KEYS[5] is missing.
if KEYS[5] and redis.call('EXISTS', KEYS[5]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[7])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[4]) - 1)
redis.call('XADD', KEYS[3], '*', 'job', ARGV[7], 'cmd', ARGV[5])
emit(KEYS[4], ARGV[6], ARGV[7], ARGV[8], 'queued', ARGV[1])
return 1
