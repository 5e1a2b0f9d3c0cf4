-- GET a 30-day per-minute series downsampled to 1,000 points.
function done(summary, latency, requests)
  io.write(string.format("QUERY_RESULT requests=%d errors=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
