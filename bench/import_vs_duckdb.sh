#!/usr/bin/env bash
# Import of UCI Online Retail (541,909 rows, gzip) into the embedded store, next to DuckDB loading
# the same file into a table of a database file, in the same run. Reports rows/s, peak memory and
# the time ratio. Needs ../shared/data (says so when missing); installs DuckDB from PyPI into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
FILE=${1:-../shared/data/online_retail/OnlineRetail.csv.gz}
RUNS=${RUNS:-3}
if [ ! -f "$FILE" ]; then echo "benchmark not run: $FILE is missing (../shared beside the repository)"; exit 1; fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import duckdb" 2>/dev/null || .venv/bin/pip install -q duckdb==2.0.0
cargo build --release -q -p shopgrowth
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for i in $(seq "$RUNS"); do
  rm -rf "$TMP/sg" "$TMP/duck.db"
  /usr/bin/time -f "%e %M" -o "$TMP/sg.time" target/release/shopgrowth --data-dir "$TMP/sg" import \
      --format online-retail --quiet --json --rejects "$TMP/rejects.txt" "$FILE" > "$TMP/sg.json" 2>/dev/null
  /usr/bin/time -f "%e %M" -o "$TMP/duck.time" .venv/bin/python bench/duckdb_load.py "$FILE" "$TMP/duck.db" > "$TMP/duck.json"
  echo "$(cut -d' ' -f1 "$TMP/sg.time") $(cut -d' ' -f2 "$TMP/sg.time")" >> "$TMP/sg.runs"
  echo "$(cut -d' ' -f1 "$TMP/duck.time") $(cut -d' ' -f2 "$TMP/duck.time")" >> "$TMP/duck.runs"
done
SG_S=$(cut -d' ' -f1 "$TMP/sg.runs" | median); SG_KB=$(cut -d' ' -f2 "$TMP/sg.runs" | median)
DK_S=$(cut -d' ' -f1 "$TMP/duck.runs" | median); DK_KB=$(cut -d' ' -f2 "$TMP/duck.runs" | median)
ROWS=$(.venv/bin/python -c "import json;print(json.load(open('$TMP/sg.json'))['rows'])")
.venv/bin/python - "$SG_S" "$SG_KB" "$DK_S" "$DK_KB" "$ROWS" "$TMP/duck.json" "$RUNS" <<'PY'
import json, sys
sg_s, sg_kb, dk_s, dk_kb, rows = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
duck = json.load(open(sys.argv[6]))
print(f"median of {sys.argv[7]} runs, wall clock including process start, {rows} rows")
print(f"| tool | seconds | rows/s | peak memory |")
print(f"|---|---|---|---|")
print(f"| shopgrowth import (validate, dedupe, SQLite WAL, synchronous=FULL) | {sg_s:.2f} | {rows/sg_s:,.0f} | {sg_kb/1024:.0f} MiB |")
print(f"| DuckDB {duck['version']} read_csv into a table ({duck['threads']} threads) | {dk_s:.2f} | {rows/dk_s:,.0f} | {dk_kb/1024:.0f} MiB |")
print(f"ratio shopgrowth/DuckDB time: {sg_s/dk_s:.2f}x (goal: at most 2x)")
PY
