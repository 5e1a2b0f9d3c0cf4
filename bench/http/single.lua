-- POST /api/v1/metrics with one sample per request, a fresh timestamp each time.
local n = 0
local base = 0

function init(args)
  base = 1800000000000 + math.random(1, 1000000) * 100000000
end

function request()
  n = n + 1
  local body = string.format(
    '{"model":"bench","version":"v1","metric":"latency","value":%d.5,"timestamp":%d}',
    n % 100, base + n)
  return wrk.format("POST", "/api/v1/metrics", {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  io.write(string.format("SINGLE_RESULT requests=%d errors=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
