-- Shared: turns a decoded job record back into a fresh `queued` one for
-- another round of runs (attempts restart at 0; `retries` counts the rounds,
-- which makes any older stream entry of the job stale).
local function reset_job(job, now)
  job['status'] = 'queued'
  job['attempts'] = 0
  job['retries'] = (tonumber(job['retries']) or 0) + 1
  job['updated_at'] = now
  for _, f in ipairs({'error', 'result', 'progress', 'started_at', 'finished_at', 'next_attempt_at',
      'cancel_requested_at'}) do
    job[f] = nil
  end
end
