-- The live version's part ARGV[2], or false. KEYS: current. ARGV: version prefix, part.
local v = redis.call('GET', KEYS[1])
if not v then return false end
return redis.call('GET', ARGV[1] .. v .. ':' .. ARGV[2])
