#!/usr/bin/env bash
# Issue 20's speed figures, modelwatch beside a real Prometheus in one run, on the peer
# benchmark's data (../shared/bench/peers/gen.py, seed 42: S series x N per-minute samples):
#
# 1. remote-write ingestion into `modelwatch serve` (fresh SQLite file): the data as
#    snappy-compressed WriteRequests of every series x MINUTES samples, over ONE
#    keep-alive connection (crates/http/examples/remote_write_load.rs);
# 2. the same data into Prometheus by its offline backfill (promtool, as run_peers.sh does),
#    then Prometheus serving that directory;
# 3. the same query_range requests on both (promql_times.py): one series over the span at
#    a 1-minute step, `avg by (model)` over every series at a 1-minute step, and
#    `avg by (model) (avg_over_time(…[1h]))` at a 1-hour step; median of REPS, each over
#    a fresh connection with the body read and parsed. Answers' sizes must agree.
#
#   S=1000 N=10080 bench/peers-modelwatch/promql_vs_prometheus.sh     # issue 20's workload
#   S=100 N=1440 REPS=3 bench/peers-modelwatch/promql_vs_prometheus.sh  # quick
#   NO_BUILD=1 … (the release binaries already built)
#
# Needs a release build (CARGO_TARGET_DIR honoured), Debian's prometheus package and
# python3. Servers listen on 127.0.0.1 only and are stopped by their PID; the temporary
# directory is removed. See promql_vs_prometheus.md beside this file for a run's figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
S=${S:-1000}; N=${N:-10080}; REPS=${REPS:-5}; MINUTES=${MINUTES:-5}
PROM_PORT=${PROM_PORT:-19190}
START_MS=1704110400000   # gen.py's default
peers="$(cd ../shared/bench/peers 2>/dev/null && pwd || echo /work/shared/bench/peers)"
data=${DATA:-${TMPDIR:-/tmp}/peerbench-data/S${S}_N${N}}
target=${CARGO_TARGET_DIR:-target}
work="$(mktemp -d "${TMPDIR:-/tmp}/mw-promql.XXXXXX")"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
log() { echo "[$(date +%T)] $*" >&2; }

mkdir -p "$data"
for f in csv:data.csv openmetrics:prom.om; do
  fmt=${f%%:*}; file=${f#*:}
  if [[ ! -s "$data/$file" ]]; then
    log "generating $data/$file"
    python3 "$peers/gen.py" -S "$S" -N "$N" -f "$fmt" -o "$data/$file.part" && mv "$data/$file.part" "$data/$file"
  fi
done
# Two builds: together, the example's dev-dependencies would change the binary's features.
# NO_BUILD=1 runs the binaries already built.
if [[ -z "${NO_BUILD:-}" ]]; then
  cargo build --release --locked -p modelwatch >&2
  cargo build --release --locked -p modelwatch-http --example remote_write_load >&2
fi
bin="$target/release/modelwatch"
load="$target/release/examples/remote_write_load"

echo "workload: S=$S series x N=$N samples = $((S * N)) samples (gen.py seed 42)"
echo "machine: $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}'), modelwatch $(git rev-parse --short HEAD)"

# --- modelwatch: serve on a fresh SQLite file, remote-write the data over one connection
mkdir -p "$work/mw"
"$bin" --db "$work/mw/mw.db" serve --listen 127.0.0.1:0 --log-level warn > "$work/mw.out" 2> "$work/mw.log" &
pids+=($!); mwpid=$!
port=""
for _ in $(seq 600); do
  port=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$work/mw.out" | grep -o '[0-9]*$' || true)
  [[ -n "$port" ]] && break; sleep 0.1
done
[[ -n "$port" ]] || { cat "$work/mw.log" >&2; exit 1; }
mw=http://127.0.0.1:$port
log "remote write into modelwatch ($mw)"
# The server's CPU time too (utime + stime, in clock ticks): on a shared machine the wall
# time depends on the other jobs; samples per CPU-second of the server much less.
cpu() { awk '{print $14 + $15}' "/proc/$mwpid/stat"; }
cpu0=$(cpu)
ingest=$("$load" --csv "$data/data.csv" --url "$mw/api/v1/write" --minutes "$MINUTES")
cpu1=$(cpu)
echo "modelwatch remote-write ingestion (1 connection, $MINUTES samples x $S series per request): $ingest"
echo "modelwatch server CPU during ingestion: $(echo "scale=2; ($cpu1 - $cpu0) / $(getconf CLK_TCK)" | bc) s = $(echo "$S * $N * $(getconf CLK_TCK) / ($cpu1 - $cpu0)" | bc) samples per server CPU-second; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- Prometheus: offline backfill of the same data, then the server on it
log "promtool backfill"
mkdir -p "$work/prom"
/usr/bin/time -f '%e' -o "$work/promtool.time" promtool tsdb create-blocks-from openmetrics \
  --max-block-duration=486h -q "$data/prom.om" "$work/prom" > "$work/promtool.log" 2>&1
echo "prometheus backfill (promtool, offline): $(cat "$work/promtool.time") s"
printf 'global:\n  scrape_interval: 1m\nscrape_configs: []\n' > "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
  --storage.tsdb.retention.time=100y --web.listen-address=127.0.0.1:$PROM_PORT \
  --log.level=warn > "$work/prom.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null && break; sleep 0.1; done

# --- the same queries on both
log "queries"
python3 bench/peers-modelwatch/promql_times.py "$mw" modelwatch_model_metric "$START_MS" "$N" "$REPS" > "$work/mw.q"
python3 bench/peers-modelwatch/promql_times.py "http://127.0.0.1:$PROM_PORT" model_perf "$START_MS" "$N" "$REPS" > "$work/prom.q"
echo "load average after the queries: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/mw.q" "$work/prom.q" "$REPS" <<'EOF'
import json, sys
mw = [json.loads(l) for l in open(sys.argv[1])]
prom = [json.loads(l) for l in open(sys.argv[2])]
print("\n| query_range (median of %s) | modelwatch ms | Prometheus ms | ratio | series, points (both) |" % sys.argv[3])
print("|---|---|---|---|---|")
for a, b in zip(mw, prom):
    same = "%d, %d" % (a["series"], a["points"]) if (a["series"], a["points"]) == (b["series"], b["points"]) \
        else "DIFFER: %d, %d vs %d, %d" % (a["series"], a["points"], b["series"], b["points"])
    print("| %s | %.1f | %.1f | %.2f | %s |" % (a["query"], a["median_ms"], b["median_ms"],
                                                a["median_ms"] / b["median_ms"], same))
EOF
kill "$mwpid"; wait "$mwpid" 2>/dev/null || true
