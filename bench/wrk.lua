-- The one wrk script of `make bench` (and of any harness that wants the same figures).
-- Set through the environment (wrk passes it to every thread's Lua state):
--   BENCH_PATHS        space-separated paths, one per request in turn (default: the URL's)
--   BENCH_METHOD       GET (default), POST...
--   BENCH_BODY         the request body, sent as application/json
--   BENCH_TOKENS       space-separated bearer tokens, one per request in turn
--   BENCH_IDEMPOTENCY  "1": a unique Idempotency-Key per request (thread, counter, random)
--   BENCH_RATE         requests per second per wrk thread, paced with delay() on a fixed
--                      schedule (a request late because every connection was busy is sent
--                      as soon as one frees up); unset: closed loop, as fast as answered
-- done() prints one line "BENCH_RESULT {json}" (bench/wrk.py parses it): requests,
-- duration, socket errors by kind, non-2xx responses by status, latency percentiles.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]])

local function words(value)
  local list = {}
  for word in string.gmatch(value or "", "%S+") do
    list[#list + 1] = word
  end
  return list
end

local paths = words(os.getenv("BENCH_PATHS"))
local tokens = words(os.getenv("BENCH_TOKENS"))
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local idempotency = os.getenv("BENCH_IDEMPOTENCY") == "1"
local rate = tonumber(os.getenv("BENCH_RATE") or "")

-- Main state: one entry per thread, to add up their status counts in done().
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_number", #threads)
end

-- Thread state (thread_number is a global there, set by setup()).
local counter = 0
statuses = {}

function init(args)
  -- The random part keeps keys unique across runs against the same database.
  math.randomseed(os.time() * 1000 + (thread_number or 0))
end

function request()
  counter = counter + 1
  local headers = {}
  if #tokens > 0 then
    headers["Authorization"] = "Bearer " .. tokens[(counter - 1) % #tokens + 1]
  end
  if idempotency then
    headers["Idempotency-Key"] = string.format(
      "bench-%d-%d-%d", thread_number or 0, counter, math.random(1, 2147483647)
    )
  end
  if body then
    headers["Content-Type"] = "application/json"
  end
  local path = nil
  if #paths > 0 then
    path = paths[(counter - 1) % #paths + 1]
  end
  return wrk.format(method, path, headers, body)
end

function response(status, headers, response_body)
  if status < 200 or status > 299 then
    statuses[status] = (statuses[status] or 0) + 1
  end
end

if rate and rate > 0 then
  local now = ffi.new("bench_timespec")
  local interval = 1000.0 / rate
  local next_at = nil

  local function now_ms()
    ffi.C.clock_gettime(1, now) -- CLOCK_MONOTONIC
    return tonumber(now.tv_sec) * 1000.0 + tonumber(now.tv_nsec) / 1e6
  end

  function delay()
    local at = now_ms()
    if next_at == nil then
      next_at = at
    end
    local slot = next_at
    next_at = next_at + interval
    return math.max(0, math.floor(slot - at))
  end
end

function done(summary, latency, requests)
  local by_status = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + count
    end
  end
  local codes = {}
  for status, count in pairs(by_status) do
    codes[#codes + 1] = string.format('"%d": %d', status, count)
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}, '
      .. '"statuses": {%s}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.timeout, errors.status,
    table.concat(codes, ", "),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean
  ))
end
