-- Removes every image; returns how many there were.
-- KEYS: images index, sizes, total bytes. ARGV: image key prefix. UNLINK in batches keeps the
-- argument list of one call bounded.
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local n = 0
for i = 1, #ids, 500 do
  local batch = {}
  for j = i, math.min(i + 499, #ids) do batch[#batch + 1] = ARGV[1] .. ids[j] end
  n = n + redis.call('UNLINK', unpack(batch))
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return n
