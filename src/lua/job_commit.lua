-- A running job's safe point (ARGV[2] empty) or its point of no return
-- (ARGV[2] the reason): either stops here when a cancel was asked for first;
-- past the point of no return the stop key says so, with the reason that
-- DELETE /jobs/<id> gives in its 409, and a cancel is no longer taken.
-- KEYS[1] the job's stop key. ARGV[1] the run's round (the record's
-- `retries`), ARGV[2] reason or '', ARGV[3] TTL.
-- Returns {'cancel', asked at} or {'go'}.
local state, rest = stop_state(KEYS[1], ARGV[1])
if state == 'requested' then return {'cancel', rest} end
if ARGV[2] ~= '' and state ~= 'committed' then
  redis.call('SET', KEYS[1], 'committed ' .. ARGV[1] .. ' ' .. ARGV[2], 'EX', ARGV[3])
end
return {'go'}
