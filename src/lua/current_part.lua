-- The live release's id and its part ARGV[2], or false.
-- KEYS: current. ARGV: release prefix, part.
local v = redis.call('GET', KEYS[1])
if not v then return false end
local part = redis.call('GET', ARGV[1] .. v .. ':' .. ARGV[2])
if not part then return false end
return {v, part}
