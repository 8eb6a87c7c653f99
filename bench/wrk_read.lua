-- wrk script: GET the paths listed in the file BENCH_PATHS (one a line),
-- in turn, and report latency percentiles and non-2xx counts as one JSON
-- line (as wrk_create.lua does). Each wrk thread runs its own copy of this
-- script and starts at its own place in the list.
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
  if line ~= "" then paths[#paths + 1] = line end
end
local counter = 0
local threads = {}
local key = os.getenv("BENCH_KEY") or ""

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = (thread_id or 0) * 7919
end

request = function()
  counter = counter + 1
  return wrk.format("GET", paths[counter % #paths + 1], {
    ["Authorization"] = "Bearer " .. key,
  })
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"seconds":%.3f,"non2xx":%d,"socket_errors":%d,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
