-- wrk script for measure.py: takes the request from the environment (BENCH_METHOD,
-- BENCH_BODY_FILE, BENCH_CLOSE, and BENCH_KEYS with BENCH_BODY_FORMAT for a body that cycles
-- through that many keys) and prints one machine-readable result line when the run is done.
local method = os.getenv("BENCH_METHOD") or "GET"
local body_file = os.getenv("BENCH_BODY_FILE") or ""

wrk.method = method
-- A new connection (and, over TLS, a new handshake) for every request.
if (os.getenv("BENCH_CLOSE") or "") ~= "" then
  wrk.headers["Connection"] = "close"
end
if body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end

-- Bodies of BENCH_KEYS distinct cache keys, sent round-robin: BENCH_BODY_FORMAT with %d
-- replaced by 0..BENCH_KEYS-1 (the same bodies measure.py stored beforehand). Made once per
-- thread, so the run itself only hands out ready requests.
local keys = tonumber(os.getenv("BENCH_KEYS") or "") or 0
if keys > 0 then
  local format = os.getenv("BENCH_BODY_FORMAT")
  local requests, n = {}, 0
  function init(args)
    for i = 1, keys do
      requests[i] = wrk.format(nil, nil, nil, string.format(format, i - 1))
    end
  end
  function request()
    n = n % keys + 1
    return requests[n]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"connect\":%d," ..
    "\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d,\"p50_us\":%d,\"p99_us\":%d," ..
    "\"max_us\":%d}\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
