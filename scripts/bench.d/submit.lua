-- wrk script for scripts/bench: POST BENCH_PATH (a job submission) until each
-- thread has BENCH_PER_THREAD answers (or wrk's -d runs out), keeping the job
-- ids of the 202 answers. At the end the ids go to BENCH_IDS_OUT, one a line,
-- and one "WRK_JSON {...}" line goes to stdout for the driver.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local req
local limit
answers = 0
ids = {}

function init(args)
  req = wrk.format("POST", assert(os.getenv("BENCH_PATH"), "BENCH_PATH unset"),
                   { ["Content-Length"] = "0" })
  limit = tonumber(os.getenv("BENCH_PER_THREAD") or "1000")
end

function request()
  return req
end

function response(status, headers, body)
  answers = answers + 1
  if status == 202 then
    local id = body:match('"id":"([%x%-]+)"')
    if id then ids[#ids + 1] = id end
  end
  if answers >= limit then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local out = assert(io.open(assert(os.getenv("BENCH_IDS_OUT")), "w"))
  local n = 0
  for _, t in ipairs(threads) do
    for _, id in ipairs(t:get("ids") or {}) do
      out:write(id, "\n")
      n = n + 1
    end
  end
  out:close()
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeout_errors":%d,' ..
    '"mean_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"ids":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, n))
end
