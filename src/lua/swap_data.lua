-- Publishes a staged data-set version. KEYS: current, genes, staging genes.
-- ARGV: version, version prefix, seconds the replaced version stays readable.
local old = redis.call('GET', KEYS[1])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RENAME', KEYS[3], KEYS[2])
  redis.call('PERSIST', KEYS[2])
end
for _, p in ipairs(parts) do
  redis.call('PERSIST', ARGV[2] .. ARGV[1] .. ':' .. p)
end
redis.call('SET', KEYS[1], ARGV[1])
if old and old ~= ARGV[1] then
  for _, p in ipairs(parts) do
    redis.call('EXPIRE', ARGV[2] .. old .. ':' .. p, ARGV[3])
  end
end
return 1
