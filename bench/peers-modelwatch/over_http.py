#!/usr/bin/env python3
"""modelwatch on the peer benchmark's workload, over HTTP, as issue 21 measures it.

`modelwatch serve` on a fresh store is fed the peers' `data.csv` (gen.py -f csv, time
order) as JSON batches of BATCH samples over one keep-alive HTTP connection; then the
disk bytes per sample, the server's peak RSS and the peers' three queries, asked the
way a Prometheus client asks VictoriaMetrics (`/api/v1/query_range`, `/api/v1/query`)
and through modelwatch's own endpoints:
  (a) one series raw over the whole span,
  (b) one series averaged in 1 h buckets,
  (c) every series' mean over the last hour.

    bench/peers-modelwatch/over_http.py --bin target/release/modelwatch --csv data.csv -S 1000 -N 10000
    bench/peers-modelwatch/over_http.py ... --db postgres://127.0.0.1:5432/mwpeers
    bench/peers-modelwatch/over_http.py --bin ... --jsonl vm.jsonl -S 1000 -N 10000

With --jsonl (gen.py -f vmjson, the file VictoriaMetrics imports) the data goes in as
VictoriaMetrics' does: one streamed `POST /api/v1/import` of the whole file (chunked,
1 MiB pieces read from disk as they are sent), timed to the answer, which comes after
the last batch's durable commit.

Standard library only. The request bodies are encoded before the timer starts (as the
peers' files are generated before theirs); ingestion is timed from the first byte sent
to the last batch acknowledged (each answer comes after the durable commit).
"""
import argparse
import csv
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

STEP_MS = 60_000
START_MS = 1704110400000  # gen.py's default


def encode_batches(path, batch):
    bodies, rows = [], []
    with open(path, newline="") as f:
        for model, version, metric, ts, value in csv.reader(f):
            if model == "model":
                continue
            rows.append('{"model":"%s","version":"%s","metric":"%s","timestamp":%s,"value":%s}'
                        % (model, version, metric, ts, value))
            if len(rows) == batch:
                bodies.append(('{"samples":[' + ",".join(rows) + "]}").encode())
                rows = []
    if rows:
        bodies.append(('{"samples":[' + ",".join(rows) + "]}").encode())
    return bodies


def read_pieces(path, size=1 << 20):
    with open(path, "rb") as f:
        while True:
            piece = f.read(size)
            if not piece:
                return
            yield piece


def start_server(binary, db, workdir):
    out = open(os.path.join(workdir, "server.out"), "w+")
    err = open(os.path.join(workdir, "server.log"), "w")
    proc = subprocess.Popen([binary, "--db", db, "serve", "--listen", "127.0.0.1:0",
                             "--log-level", "warn"], stdout=out, stderr=err)
    for _ in range(600):
        out.seek(0)
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", out.read())
        if found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    sys.exit("modelwatch serve did not start: " + open(err.name).read()[-2000:])


def peak_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024
    return 0


def allocated_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


def postgres_bytes(db):
    query = "SELECT pg_database_size(current_database())"
    return int(subprocess.check_output(["psql", "-Atq", db, "-c", query]).strip())


def timed_get(conn, path, reps):
    times, body = [], b""
    for _ in range(reps):
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - start) * 1000.0)
        if response.status != 200:
            sys.exit("GET %s: %d %s" % (path, response.status, body[:300]))
    return statistics.median(times), body


def prom_points(body):
    result = json.loads(body)["data"]["result"]
    return len(result), sum(len(s.get("values", [])) or 1 for s in result)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the modelwatch binary (a release build)")
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", help="gen.py -f csv output: JSON batches to /api/v1/metrics")
    source.add_argument("--jsonl", help="gen.py -f vmjson output: one streamed /api/v1/import")
    ap.add_argument("-S", type=int, default=1000)
    ap.add_argument("-N", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--db", default="", help="a postgres:// location (a fresh database); "
                    "default: a fresh SQLite file in a temporary directory")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    bodies = encode_batches(args.csv, args.batch) if args.csv else []
    samples = args.S * args.N
    workdir = tempfile.mkdtemp(prefix="mw-peers-http.")
    datadir = os.path.join(workdir, "data")
    os.mkdir(datadir)
    db = args.db or os.path.join(datadir, "mw.db")
    empty_pg = postgres_bytes(db) if args.db else 0
    proc, port = start_server(args.bin, db, workdir)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        start = time.perf_counter()
        if args.jsonl:
            conn.request("POST", "/api/v1/import", read_pieces(args.jsonl),
                         {"Content-Type": "application/x-ndjson"}, encode_chunked=True)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                sys.exit("POST /api/v1/import: %d %s" % (response.status, answer[:500]))
            accepted = json.loads(answer)["accepted"]
            if accepted != args.S * args.N:
                sys.exit("POST /api/v1/import stored %d samples, not %d" % (accepted, args.S * args.N))
        for body in bodies:
            conn.request("POST", "/api/v1/metrics", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                sys.exit("POST /api/v1/metrics: %d %s" % (response.status, answer[:500]))
        ingest_s = time.perf_counter() - start
        rss = peak_rss(proc.pid)
        disk = postgres_bytes(db) - empty_pg if args.db else allocated_bytes(datadir)

        end_ms = START_MS + (args.N - 1) * STEP_MS
        s, e = START_MS // 1000, end_ms // 1000
        selector = 'modelwatch_model_metric{model="model_000",metric="accuracy"}'
        queries = [
            ("(a) one series raw, PromQL query_range", "/api/v1/query_range?" + urllib.parse.urlencode(
                {"query": selector, "start": s, "end": e, "step": "60"}), prom_points),
            ("(b) one series 1 h buckets, PromQL query_range", "/api/v1/query_range?" + urllib.parse.urlencode(
                {"query": "avg_over_time(%s[1h])" % selector, "start": s + 3600, "end": e,
                 "step": "3600"}), prom_points),
            ("(c) every series' last-hour mean, PromQL query", "/api/v1/query?" + urllib.parse.urlencode(
                {"query": "avg_over_time(modelwatch_model_metric[1h])", "time": e}), prom_points),
            ("(c) every series' last-hour mean, /api/v1/series/aggregate",
             "/api/v1/series/aggregate?" + urllib.parse.urlencode(
                 {"from": end_ms - 3600_000 + 1, "to": end_ms + 1}),
             lambda body: (len(json.loads(body)["series"]), len(json.loads(body)["series"]))),
        ]
        print("workload: S=%d series x N=%d samples = %d samples (gen.py seed 42), store %s"
              % (args.S, args.N, samples, "postgres" if args.db else "SQLite file"))
        how = ("one streamed /api/v1/import of %s" % os.path.basename(args.jsonl) if args.jsonl
               else "%d JSON batches of %d over 1 connection" % (len(bodies), args.batch))
        print("ingest: %.2f s = %.0f samples/s (%s)" % (ingest_s, samples / ingest_s, how))
        print("disk while serving: %d bytes = %.2f bytes/sample" % (disk, disk / samples))
        print("peak RSS (server, ingest): %.1f MiB" % (rss / 1048576))
        for name, path, count in queries:
            median_ms, body = timed_get(conn, path, args.reps)
            series, points = count(body)
            print("%s: %.1f ms median of %d (%d series, %d points)"
                  % (name, median_ms, args.reps, series, points))
        proc.terminate()
        proc.wait(timeout=120)
        disk = postgres_bytes(db) - empty_pg if args.db else allocated_bytes(datadir)
        print("disk after a clean shutdown: %d bytes = %.2f bytes/sample" % (disk, disk / samples))
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
