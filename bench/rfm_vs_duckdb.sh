#!/usr/bin/env bash
# RFM scores and classes of every Online Retail customer, straight from the gzip CSV:
# `shopgrowth rfm` next to DuckDB computing the same definition (docs/rfm.md) in SQL, in the same
# run. Reports both times, the ratio, and whether every customer's row agrees.
# Needs ../shared/data (says so when missing); installs DuckDB from PyPI into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
FILE=${1:-../shared/data/online_retail/OnlineRetail.csv.gz}
RUNS=${RUNS:-5}
if [ ! -f "$FILE" ]; then echo "benchmark not run: $FILE is missing (../shared beside the repository)"; exit 1; fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import duckdb" 2>/dev/null || .venv/bin/pip install -q duckdb==2.0.0
cargo build --release -q -p shopgrowth
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
for i in $(seq "$RUNS"); do
  /usr/bin/time -f "%e %M" -o "$TMP/sg.time" target/release/shopgrowth rfm --format online-retail "$FILE" --out "$TMP/sg.csv" >/dev/null
  /usr/bin/time -f "%e %M" -o "$TMP/dk.time" .venv/bin/python bench/rfm_duckdb.py "$FILE" "$TMP/dk.csv" > "$TMP/dk.json"
  cat "$TMP/sg.time" >> "$TMP/sg.runs"; cat "$TMP/dk.time" >> "$TMP/dk.runs"
done
.venv/bin/python - "$TMP" "$RUNS" <<'PY'
import csv, json, statistics, sys
tmp, runs = sys.argv[1], sys.argv[2]
def med(name, col):
    return statistics.median(float(l.split()[col]) for l in open(f"{tmp}/{name}.runs"))
sg_s, sg_kb, dk_s, dk_kb = med("sg", 0), med("sg", 1), med("dk", 0), med("dk", 1)
cols = ["customer", "recency_days", "frequency", "monetary", "r", "f", "m", "rfm_class"]
ours = {r["customer"]: [r[c] for c in cols] for r in csv.DictReader(open(f"{tmp}/sg.csv"))}
theirs = {r["customer"]: [r[c] for c in cols] for r in csv.DictReader(open(f"{tmp}/dk.csv"))}
differ = [c for c in ours.keys() | theirs.keys() if ours.get(c) != theirs.get(c)]
duck = json.load(open(f"{tmp}/dk.json"))
print(f"median of {runs} runs, wall clock including process start; {len(ours)} customers")
print("| tool | seconds | peak memory |")
print("|---|---|---|")
print(f"| shopgrowth rfm | {sg_s:.2f} | {sg_kb/1024:.0f} MiB |")
print(f"| DuckDB {duck['version']} SQL ({duck['threads']} threads) | {dk_s:.2f} | {dk_kb/1024:.0f} MiB |")
print(f"ratio shopgrowth/DuckDB time: {sg_s/dk_s:.2f}x (goal: below 1); customers that differ: {len(differ)} {sorted(differ)[:5]}")
PY
