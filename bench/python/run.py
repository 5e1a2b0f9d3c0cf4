"""Speed of the Python package (issue 17's goals), printed as figures:

1. embedded ``record_many`` from NumPy arrays (goal >= 1,000,000 samples/s): 2,000,000
   samples of 20 series into a fresh SQLite file, durable on return;
2. one embedded ``record_metric`` (goal <= 20 us): the seed's call with keywords, 200,000
   times, mean and p99 of batches of 1,000;
3. the ASGI middleware's overhead per request at p99 under load (goal <= 20 us): uvicorn
   serving overhead_app.py, loaded by wrk (4 connections, 10 s), timed inside the server.

    target/python-venv/bin/python bench/python/run.py      # after scripts/test-python or maturin develop
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

import modelwatch

HERE = Path(__file__).resolve().parent


def record_many(directory: str) -> None:
    collector = modelwatch.MetricsCollector(modelwatch.Database(os.path.join(directory, "many.db")))
    series, per_series = 20, 100_000
    start = modelwatch._native.now_ms() - per_series * 1000
    timestamps = np.arange(start, start + per_series * 1000, 1000, dtype=np.int64)
    values = [np.random.default_rng(i).normal(40.0, 3.0, per_series).clip(0) for i in range(series)]
    began = time.perf_counter()
    for i in range(series):
        collector.record_many(model_name=f"model_{i}", model_version="v1", metric_type="latency",
                              values=values[i], timestamps=timestamps)
    elapsed = time.perf_counter() - began
    total = series * per_series
    print(f"record_many (NumPy, embedded SQLite, durable): {total:,} samples in {elapsed:.2f} s = "
          f"{total / elapsed:,.0f} samples/s")
    collector.close()


def record_metric(directory: str) -> None:
    collector = modelwatch.MetricsCollector(modelwatch.Database(os.path.join(directory, "one.db")))
    batches = []
    for batch in range(200):
        began = time.perf_counter_ns()
        for i in range(1000):
            collector.record_metric(model_name="fraud_detector", model_version="v2.1",
                                    metric_type=modelwatch.MetricType.PRECISION, metric_value=0.94,
                                    timestamp=batch * 1000 + i)
        batches.append((time.perf_counter_ns() - began) / 1000 / 1000)
    began = time.perf_counter()
    collector.flush()
    flushed = time.perf_counter() - began
    batches.sort()
    print(f"record_metric (embedded, queued): mean {sum(batches) / len(batches):.2f} us, "
          f"p99 of 1,000-call batches {batches[int(len(batches) * 0.99)]:.2f} us per call; "
          f"flush of the last queue {flushed * 1000:.1f} ms")
    collector.close()


def middleware(directory: str) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: scripts/setup installs it")
    env = {**os.environ, "MW_DB": os.path.join(directory, "served.db"), "PYTHONPATH": str(HERE)}
    port = "18766"
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "overhead_app:probe", "--port", port, "--log-level", "warning",
         "--no-access-log"], env=env, cwd=HERE,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        out = subprocess.run(["wrk", "-t", "2", "-c", "4", "-d", "10s", f"http://127.0.0.1:{port}/predict"],
                             capture_output=True, text=True, check=True).stdout
        rps = next(line for line in out.splitlines() if line.startswith("Requests/sec"))
        stats = ast.literal_eval(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats").read().decode())
        print(f"ASGI middleware under uvicorn + wrk ({rps.split()[-1]} requests/s): overhead per request "
              f"p50 {stats['p50_us']:.1f} us, p99 {stats['p99_us']:.1f} us, max {stats['max_us']:.0f} us "
              f"over {stats['requests']:,} requests; recorder {stats['recorder']}")
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        record_many(directory)
        record_metric(directory)
        middleware(directory)


if __name__ == "__main__":
    main()
