-- wrk script: replays the ready requests that `wrk_load requests` wrote
-- (each record: its length in 8 decimal digits, then the raw HTTP request),
-- one after the other, so that every request is a distinct signed delivery.
--
--   wrk -t1 -c32 -d8s -s benches/wrk/replay.lua http://127.0.0.1:PORT -- FILE
--
-- Prints one machine-readable line at the end:
--   BENCH requests=… duration_us=… rps=… non2xx=… errors=… wraps=… p50_us=… p99_us=…
-- `wraps` > 0 means the file ran out and requests repeated (duplicates):
-- generate more.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- per thread (globals, read by done() through thread:get)
wraps = 0
local file, path

function init(args)
  path = args[1]
  file = assert(io.open(path, "rb"))
end

function request()
  local head = file:read(8)
  if head == nil then
    wraps = wraps + 1
    file:close()
    file = assert(io.open(path, "rb"))
    head = file:read(8)
  end
  return file:read(tonumber(head))
end

function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wraps") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.0f non2xx=%d errors=%d wraps=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    e.status, e.connect + e.read + e.write + e.timeout, w,
    latency:percentile(50), latency:percentile(99)))
end
