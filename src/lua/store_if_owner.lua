-- Stores the job record (KEYS[2] = ARGV[4], EX ARGV[5]) and, when ARGV[6] is
-- '1', acknowledges the entry in the same step. Returns 1, or 0 when the entry
-- is no longer the consumer's.
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
if ARGV[6] == '1' then redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) end
return 1
