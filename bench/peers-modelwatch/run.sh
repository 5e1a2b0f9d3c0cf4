#!/usr/bin/env bash
# modelwatch on the peer benchmark's workload (../shared/bench/peers): the same gen.py data,
# 1. over HTTP as issue 21 measures it (`modelwatch serve` on a fresh SQLite file, JSON
#    batches of 10,000 over one connection, the three queries over HTTP: over_http.py);
# 2. through `modelwatch metrics import` of the CSV (durable batches of 10,000), then the
#    three queries in-process (`cargo bench -p modelwatch-store --bench peers`).
# See README.md beside this file.
#
#   S=1000 N=10000 bench/peers-modelwatch/run.sh      # the reference workload
#   S=100 N=10000 bench/peers-modelwatch/run.sh       # quick
#   CSV=/tmp/peerbench-data/S1000_N10000/data.csv bench/peers-modelwatch/run.sh   # run_peers.sh's file
#   MW_PEERS_POSTGRES=postgres://postgres@127.0.0.1:5432/mwpeers bench/peers-modelwatch/run.sh
#     (also over HTTP on that PostgreSQL database, which must exist and be empty)
set -euo pipefail
cd "$(dirname "$0")/../.."
S="${S:-1000}"
N="${N:-10000}"
peers="$(cd ../shared/bench/peers && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/mw-peers.XXXXXX")"
trap 'rm -rf "$work"' EXIT

csv="${CSV:-$work/data.csv}"
[ -f "$csv" ] || python3 "$peers/gen.py" -S "$S" -N "$N" -f csv -o "$csv"
cargo build --release --locked -p modelwatch >/dev/null 2>&1
bin="${CARGO_TARGET_DIR:-target}/release/modelwatch"

echo "## over HTTP: modelwatch serve, JSON batches of 10,000, 1 connection"
python3 bench/peers-modelwatch/over_http.py --bin "$bin" --csv "$csv" -S "$S" -N "$N"
if [ -n "${MW_PEERS_POSTGRES:-}" ]; then
    echo "## over HTTP on PostgreSQL"
    python3 bench/peers-modelwatch/over_http.py --bin "$bin" --csv "$csv" -S "$S" -N "$N" --db "$MW_PEERS_POSTGRES"
fi

echo "## modelwatch metrics import, queries in-process"
db="$work/mw.db"
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/rss" "$bin" --db "$db" --format json metrics import "$csv" >/dev/null
end=$(date +%s.%N)
bytes=$(du -s -B1 "$db"* | awk '{s+=$1} END{print s}')
samples=$((S * N))
echo "workload: S=$S series x N=$N samples = $samples samples (gen.py seed 42)"
echo "ingest: $(echo "$end - $start" | bc) s wall = $(echo "$samples / ($end - $start)" | bc) samples/s (CSV parse + validation + durable commits)"
echo "disk: $bytes bytes = $(echo "scale=2; $bytes / $samples" | bc) bytes/sample"
echo "peak RSS during import: $(( $(cat "$work/rss") / 1024 )) MiB"
MW_PEERS_DB="$db" cargo bench --locked -p modelwatch-store --bench peers 2>/dev/null | grep '^('
