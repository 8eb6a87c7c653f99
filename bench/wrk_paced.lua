-- wrk script: GET the paths listed in BENCH_PATHS (one a line) at a fixed
-- rate, BENCH_RATE requests a second in all, and report latency
-- percentiles measured from when each request was due, not from when it
-- was sent: a request held back by a slow reply still counts its wait
-- ("coordinated omission"). Run with as many threads as connections, so
-- that each thread's one connection sends its own share of the rate and a
-- reply belongs to the last request due on that thread.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *now);
]]
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
  if line ~= "" then paths[#paths + 1] = line end
end
local key = os.getenv("BENCH_KEY") or ""
local rate = tonumber(os.getenv("BENCH_RATE"))
local thread_count = tonumber(os.getenv("BENCH_THREADS"))  -- wrk's -t, one connection each
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

local counter = 0
local interval_ms, due, sent
latencies = {}  -- a global, so that done() can read each thread's copy

function init(args)
  counter = (thread_id or 0) * 7919
  interval_ms = 1000 * thread_count / rate
  -- The threads' schedules are spread over one interval, not all at once.
  due = now_ms() + interval_ms * (thread_id or 0) / thread_count
end

function delay()
  return math.max(0, math.floor(due - now_ms()))
end

request = function()
  counter = counter + 1
  sent = now_ms()
  return wrk.format("GET", paths[counter % #paths + 1], {
    ["Authorization"] = "Bearer " .. key,
  })
end

response = function(status, headers, body)
  local start = math.min(due, sent)  -- a request sent early by the 1 ms timer counts from when it went
  latencies[#latencies + 1] = now_ms() - start
  due = due + interval_ms
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * p / 100))]
end

done = function(summary, latency, requests)
  local all = {}
  for _, thread in ipairs(threads) do
    for _, ms in ipairs(thread:get("latencies")) do all[#all + 1] = ms end
  end
  table.sort(all)
  local errors = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"seconds":%.3f,"non2xx":%d,"socket_errors":%d,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    percentile(all, 50), percentile(all, 99)))
end
