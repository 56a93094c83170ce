-- Removes one image and its bookkeeping; returns 1 when it existed.
-- KEYS: image key, images index, sizes, total bytes. ARGV: id.
local bytes = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if bytes > 0 then redis.call('DECRBY', KEYS[4], bytes) end
return redis.call('UNLINK', KEYS[1])
