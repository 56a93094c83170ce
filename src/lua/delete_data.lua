-- Removes the live data set; returns how many records it had.
-- KEYS: current, genes. ARGV: version prefix.
local n = redis.call('HLEN', KEYS[2])
-- The hash also names its version (VERSION_FIELD in genes/dataset.rs).
if redis.call('HGET', KEYS[2], ':version') then n = n - 1 end
local v = redis.call('GET', KEYS[1])
redis.call('UNLINK', KEYS[1], KEYS[2])
if v then
  for _, p in ipairs(parts) do redis.call('UNLINK', ARGV[1] .. v .. ':' .. p) end
end
return n
