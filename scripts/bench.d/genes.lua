-- wrk script for scripts/bench: GET /genes/<id> over random ids.
-- BENCH_IDS: file with one HGNC id per line (from GET /genes); or
-- BENCH_PATHS: file with one path per line (e.g. /genes/symbol/TP53).
-- At the end it prints one line, "WRK_JSON {...}", that the driver reads.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local requests = {}

function init(args)
  local paths = os.getenv("BENCH_PATHS")
  local path = paths or os.getenv("BENCH_IDS")
  local f = assert(io.open(path, "r"), "cannot open BENCH_IDS/BENCH_PATHS=" .. tostring(path))
  for line in f:lines() do
    if line ~= "" then
      requests[#requests + 1] = wrk.format("GET", paths and line or ("/genes/" .. line))
    end
  end
  f:close()
  assert(#requests > 0, "no ids in " .. path)
  -- Each thread its own sequence.
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end

function request()
  return requests[math.random(#requests)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeout_errors":%d,' ..
    '"mean_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
