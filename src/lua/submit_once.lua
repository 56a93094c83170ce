-- A submission under an Idempotency-Key: submit_job's keys and arguments,
-- and K[6] the key's record (per client), A[12] the request's fingerprint,
-- A[13] how long the record is kept (s). K[5] is submit_job's optional one
-- (pass K[6] anyway: an empty string when there is none).
-- The record holds "<fingerprint> <job id>". Checked and written in the same
-- step as the job, so concurrent duplicates (any number of api processes)
-- make one job: the first queues it, the others find its record.
-- Returns submit_job's reply, or {'replay', job id} for the same request
-- again, or {'mismatch', job id} for another request under the same key.
local seen = redis.call('GET', KEYS[6])
if seen then
  local fingerprint, id = string.match(seen, '^(%S+) (%S+)$')
  if fingerprint == ARGV[12] then return {'replay', id} end
  return {'mismatch', id or ''}
end
local data = KEYS[5]
if data == '' then data = nil end
local r = submit_job({KEYS[1], KEYS[2], KEYS[3], KEYS[4], data}, ARGV)
if r[1] == 'queued' then
  redis.call('SET', KEYS[6], ARGV[12] .. ' ' .. ARGV[7], 'EX', ARGV[13])
end
return r
