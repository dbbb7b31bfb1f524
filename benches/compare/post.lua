-- wrk script for benches/compare.sh: POST the JSON body in the file named by
-- the environment variable COMPARE_BODY (one issuance request) on every
-- request, and print one machine-readable RESULT line when the run ends.
-- Latencies are in microseconds (wrk's histogram unit).
local path = assert(os.getenv("COMPARE_BODY"), "COMPARE_BODY is not set")
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
