#!/usr/bin/env python3
"""Times PromQL range queries against a Prometheus-compatible API (promql_vs_prometheus.sh).

    promql_times.py BASE_URL METRIC_NAME START_MS N REPS

Prints one JSON line per query: its name, the median, min and max wall time in ms over
REPS repetitions (each over a fresh connection, the body read and parsed), and the
series and points answered (so the two servers' answers can be checked to agree).
Standard library only.
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse

STEP_S = 60


def queries(name, start_s, end_s):
    one = '%s{model="model_000",metric="accuracy"}' % name
    return [
        ("one series, 7 d at 1 m step", one, 60),
        ("avg by (model) over all series, 7 d at 1 m step", "avg by (model) (%s)" % name, 60),
        ("avg by (model) (avg_over_time([1h])), 7 d at 1 h step",
         "avg by (model) (avg_over_time(%s[1h]))" % name, 3600),
    ]


def run(base, name, start_ms, n, reps):
    url = urllib.parse.urlsplit(base)
    start_s = start_ms / 1000.0
    end_s = (start_ms + (n - 1) * STEP_S * 1000) / 1000.0
    for label, query, step in queries(name, start_s, end_s):
        path = "/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": query, "start": "%.3f" % start_s, "end": "%.3f" % end_s, "step": step})
        times = []
        series = points = 0
        for _ in range(reps):
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
            began = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            result = json.loads(body)
            times.append((time.perf_counter() - began) * 1000.0)
            conn.close()
            if response.status != 200 or result.get("status") != "success":
                sys.exit("%s %s: %d %s" % (base, query, response.status, body[:300]))
            matrix = result["data"]["result"]
            series, points = len(matrix), sum(len(s["values"]) for s in matrix)
        print(json.dumps({"query": label, "promql": query, "step_s": step,
                          "median_ms": round(statistics.median(times), 1),
                          "min_ms": round(min(times), 1), "max_ms": round(max(times), 1),
                          "series": series, "points": points}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    run(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
