-- wrk script: POST /api/models/create with a unique id per request and
-- report latency percentiles and non-2xx counts as one JSON line.
-- Each wrk thread runs its own copy of this script; setup() gives each a
-- global `thread_id` (a global, so that thread:set reaches it).
local counter = 0
local threads = {}
local run = os.getenv("BENCH_RUN") or "run"
local key = os.getenv("BENCH_KEY") or ""

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

request = function()
  counter = counter + 1
  local body = string.format(
    '{"id":"%s-t%d-%d","name":"Bench model","base_model_id":"gpt-4",' ..
    '"params":{"temperature":0.7,"max_tokens":2000,"top_p":1.0},' ..
    '"meta":{"description":"benchmark","capabilities":{"vision":true}},' ..
    '"access_grants":[{"access_type":"group","access_id":"developers","permission":"read"}]}',
    run, thread_id or 0, counter)
  return wrk.format("POST", "/api/models/create", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
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
