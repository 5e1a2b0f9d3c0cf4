-- POST /api/v1/metrics with {"samples": [...]} bodies of BATCH samples each, rotating
-- over BODIES precomputed bodies with disjoint timestamps (so most writes are new
-- samples, not replacements) across 10 series.
local BATCH = tonumber(os.getenv("BATCH") or "10000")
local BODIES = 20
local bodies = {}

function init(args)
  local thread_offset = math.random(1, 1000000) * 1000000000
  for b = 1, BODIES do
    local parts = {}
    for i = 1, BATCH do
      local t = 1700000000000 + thread_offset + (b * BATCH + i) * 1000
      parts[i] = string.format(
        '{"model":"bench","version":"v1","metric":"m%d","value":%.3f,"timestamp":%d}',
        i % 10, (i % 1000) / 10, t)
    end
    bodies[b] = '{"samples":[' .. table.concat(parts, ",") .. ']}'
  end
end

local n = 0
function request()
  n = n + 1
  return wrk.format("POST", "/api/v1/metrics", {["Content-Type"] = "application/json"},
                    bodies[(n % BODIES) + 1])
end

function done(summary, latency, requests)
  io.write(string.format("BATCH_RESULT requests=%d errors=%d duration_us=%d samples_per_s=%.0f\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.duration,
    summary.requests * BATCH / (summary.duration / 1e6)))
end
