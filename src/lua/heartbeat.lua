-- XCLAIM to the owner itself with min-idle 0 resets the entry's idle time
-- without counting a delivery (JUSTID), so the reclaimer leaves a slow job alone.
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
