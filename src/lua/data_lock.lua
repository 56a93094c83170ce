-- Takes, keeps or gives back the data lock that lets one load at a time
-- write records and collect the unused ones. KEYS: lock.
-- ARGV: 'take' | 'renew' | 'release', holder, milliseconds it lasts.
-- Returns 1 when the holder has (or, for release, had) the lock, else 0.
local holder = redis.call('GET', KEYS[1])
if ARGV[1] == 'take' then
  if holder and holder ~= ARGV[2] then return 0 end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if holder ~= ARGV[2] then return 0 end
if ARGV[1] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
