-- The newest image and its job id, or false. KEYS: images index. ARGV: image key prefix.
local ids = redis.call('ZREVRANGE', KEYS[1], 0, 0)
if #ids == 0 then return false end
local png = redis.call('GET', ARGV[1] .. ids[1])
if not png then return false end
return {ids[1], png}
