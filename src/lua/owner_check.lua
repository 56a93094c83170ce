-- Shared head of the scripts that act for a consumer: go on only while that
-- consumer still owns the entry. A worker cut off from Redis (a restart, a long
-- pause) may find its entry reclaimed by another consumer, which may even have
-- finished the job; its late write must not undo that.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #pending == 0 or pending[1][2] ~= ARGV[3] then return 0 end
