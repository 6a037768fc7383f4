-- wrk script for measure.py: takes the request from the environment (BENCH_METHOD,
-- BENCH_BODY_FILE, BENCH_CLOSE) and prints one machine-readable result line when the run is done.
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

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"connect\":%d," ..
    "\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d,\"p50_us\":%d,\"p99_us\":%d," ..
    "\"max_us\":%d}\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
