-- Shared: appends a job's state change to the capped events stream that every
-- api process reads (SSE, Prefer: wait). Written in the same script as the
-- change itself, so no change goes unannounced and none is announced early.
local function emit(events, maxlen, id, kind, status, json)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
    'job', id, 'kind', kind, 'status', status, 'data', json)
end
