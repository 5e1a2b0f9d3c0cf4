#!/usr/bin/env bash
# modelwatch on the peer benchmark's workload (../shared/bench/peers): the same gen.py data,
# ingested through modelwatch's fastest user path (`modelwatch metrics import` of the CSV,
# durable batches of 10,000), then disk bytes per sample, peak RSS and the three queries.
#
#   S=1000 N=10000 bench/peers-modelwatch/run.sh      # the reference workload
#   S=100 N=10000 bench/peers-modelwatch/run.sh       # quick
set -euo pipefail
cd "$(dirname "$0")/../.."
S="${S:-1000}"
N="${N:-10000}"
peers="$(cd ../shared/bench/peers && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/mw-peers.XXXXXX")"
trap 'rm -rf "$work"' EXIT

python3 "$peers/gen.py" -S "$S" -N "$N" -f csv -o "$work/data.csv"
cargo build --release --locked -p modelwatch >/dev/null 2>&1
db="$work/mw.db"
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/rss" target/release/modelwatch --db "$db" --format json metrics import "$work/data.csv" >/dev/null
end=$(date +%s.%N)
bytes=$(du -s -B1 "$work" --exclude=data.csv --exclude=rss | cut -f1)
samples=$((S * N))
echo "workload: S=$S series x N=$N samples = $samples samples (gen.py seed 42)"
echo "ingest: $(echo "$end - $start" | bc) s wall = $(echo "$samples / ($end - $start)" | bc) samples/s (CSV parse + validation + durable commits)"
echo "disk: $bytes bytes = $(echo "scale=2; $bytes / $samples" | bc) bytes/sample"
echo "peak RSS during import: $(( $(cat "$work/rss") / 1024 )) MiB"
MW_PEERS_DB="$db" cargo bench --locked -p modelwatch-store --bench peers 2>/dev/null | grep '^('
