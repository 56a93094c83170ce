-- Books a plot's PNG, just stored by a SET in the same MULTI, and keeps the
-- images within their bounds, removing the oldest first. The PNG itself never
-- passes through Lua: Redis's Lua hashes every byte of every string it is
-- given, which for a PNG cost more than the rest of the job's scripts together.
-- Returns the ids whose images were evicted (the caller marks their job
-- records; doing that here, with cjson, cost Redis more than it saved).
-- KEYS: image key, images index (zset id -> ms), sizes (hash id -> bytes),
--       total bytes (string).
-- ARGV: id, PNG size in bytes, now ms, max count (0: none), max bytes (0: none),
--       image key prefix.
local id, size = ARGV[1], tonumber(ARGV[2])
local max_count, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
-- A rerun overwrites its own image: count its old size out first.
local old = tonumber(redis.call('HGET', KEYS[3], id) or '0')
redis.call('ZADD', KEYS[2], ARGV[3], id)
redis.call('HSET', KEYS[3], id, size)
local total = redis.call('INCRBY', KEYS[4], size - old)
local count = redis.call('ZCARD', KEYS[2])
local evicted = {}
while (max_count > 0 and count > max_count) or (max_bytes > 0 and total > max_bytes) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
  -- The image just stored is never evicted, even when it alone is over the bound.
  if #oldest == 0 or oldest[1] == id then break end
  local victim = oldest[1]
  local bytes = tonumber(redis.call('HGET', KEYS[3], victim) or '0')
  -- An image that expired (ttl) is gone already: not an eviction.
  if redis.call('UNLINK', ARGV[6] .. victim) == 1 then
    evicted[#evicted + 1] = victim
  end
  redis.call('ZREM', KEYS[2], victim)
  redis.call('HDEL', KEYS[3], victim)
  total = redis.call('DECRBY', KEYS[4], bytes)
  count = count - 1
end
return evicted
