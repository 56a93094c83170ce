-- The records ARGV[2..] if ARGV[1] is still the live data-set version,
-- after the live version's name; only that name when it is another one, and
-- nothing when no data is loaded. KEYS: current, genes.
local live = redis.call('GET', KEYS[1])
if not live then return {} end
if live ~= ARGV[1] or #ARGV < 2 then return {live} end
local records = redis.call('HMGET', KEYS[2], unpack(ARGV, 2))
table.insert(records, 1, live)
return records
