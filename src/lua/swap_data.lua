-- Publishes a staged release and drops the oldest past the number kept.
-- KEYS: current, releases (zset id -> load order), generation, lock, order
-- counter, every id ever swapped in (so an unknown id is told from a dropped
-- one), the records hash of the layout before releases, the announcements'
-- sequence number.
-- ARGV: release id, job id (the lock's holder), generation seen at staging,
-- releases kept, staging prefix (<p>:staging:<job>:), release prefix
-- (<p>:release:), the parts' prefix of the layout before releases (<p>:data:),
-- the announcements' channel.
-- Returns {'swapped', dropped ids...}, {'lost_lock'} (another load holds
-- the lock now), {'deleted'} (DELETE /data ran meanwhile) or {'missing', part}.
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return {'lost_lock'} end
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[3] then return {'deleted'} end
for _, p in ipairs(parts) do
  if redis.call('EXISTS', ARGV[5] .. p) == 0 then return {'missing', p} end
end
for _, p in ipairs(parts) do
  local dest = ARGV[6] .. ARGV[1] .. ':' .. p
  redis.call('RENAME', ARGV[5] .. p, dest)
  redis.call('PERSIST', dest)
end
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[5]), ARGV[1])
redis.call('SADD', KEYS[6], ARGV[1])
-- Only the live release keeps its index stored: a reader of an older one
-- builds it from that release's records (and every replica already holds
-- the index it was serving), so K releases cost one index, not K.
if old and old ~= ARGV[1] then
  redis.call('UNLINK', ARGV[6] .. old .. ':index')
  -- A data set of the layout before releases (0.2: one hash of records and
  -- <p>:data:<version>:<part>) is replaced whole, its keys removed.
  if redis.call('EXISTS', ARGV[6] .. old .. ':meta') == 0 then
    redis.call('UNLINK', KEYS[7])
    for _, p in ipairs({'blob', 'ids', 'stats', 'meta', 'index'}) do
      redis.call('UNLINK', ARGV[7] .. old .. ':' .. p)
    end
  end
end
local reply = {'swapped'}
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if extra > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra - 1)) do
    for _, p in ipairs(parts) do redis.call('UNLINK', ARGV[6] .. id .. ':' .. p) end
    table.insert(reply, id)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
end
announce(KEYS[8], KEYS[2], KEYS[1], ARGV[8])
return reply
