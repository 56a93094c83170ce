-- The live version and the length of its blob, or false.
-- KEYS: current. ARGV: version prefix.
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('STRLEN', ARGV[1] .. v .. ':blob')}
