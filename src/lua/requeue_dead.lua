-- POST /jobs/dead/<entry>/requeue: the dead-lettered entry goes back on the
-- stream as a fresh delivery with its original fields, and leaves the
-- dead-letter stream; its job, if failed, is queued again.
-- KEYS[1] dead letters, KEYS[2] stream, KEYS[3] events.
-- ARGV[1] entry id, ARGV[2] job key prefix, ARGV[3] now (RFC 3339),
-- ARGV[4] TTL of unfinished records, ARGV[5] events maxlen, ARGV[6] max
-- backlog (0: none), ARGV[7] consumer group.
-- Returns {'missing'}, {'empty'}, {'busy', backlog} when the queue is at its
-- limit (nothing changes), or {'requeued', new entry id, record or ''}.
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return {'missing'} end
local fields = e[1][2]
local orig, order = {}, {}
for i = 1, #fields, 2 do
  local k = fields[i]
  if string.sub(k, 1, 5) == 'orig_' then
    k = string.sub(k, 6)
    if orig[k] == nil then order[#order + 1] = k end
    orig[k] = fields[i + 1]
  end
end
if #order == 0 then return {'empty'} end
local max = tonumber(ARGV[6])
if max > 0 then
  local backlog = backlog_of(KEYS[2], ARGV[7])
  if backlog >= max then return {'busy', tostring(backlog)} end
end
local new = ''
if orig['job'] then
  local raw = redis.call('GET', ARGV[2] .. orig['job'])
  if raw then
    local job = cjson.decode(raw)
    if job['status'] == 'failed' then
      reset_job(job, ARGV[3])
      new = cjson.encode(job)
      redis.call('SET', ARGV[2] .. orig['job'], new, 'EX', ARGV[4])
      emit(KEYS[3], ARGV[5], job['id'], job['kind'], 'queued', new)
    end
    if orig['retry'] == nil then order[#order + 1] = 'retry' end
    orig['retry'] = tostring(tonumber(job['retries']) or 0)
  end
end
local args = {}
for _, k in ipairs(order) do
  args[#args + 1] = k
  args[#args + 1] = orig[k]
end
local id = redis.call('XADD', KEYS[2], '*', unpack(args))
redis.call('XDEL', KEYS[1], ARGV[1])
return {'requeued', id, new}
