#!/usr/bin/env bash
# Segment latency on a generated shop (default 1,000,000 users, ~30M events over a year, ~100
# tags): `shopgrowth bench segments` times two 5-clause questions with behaviour windows on its
# bitmaps, writes the same users and acts as CSV, and DuckDB answers the same questions in SQL
# over those tables in the same run. Reports both latencies, the ratio, and whether the answers
# agree. Needs no ../shared data; installs DuckDB from PyPI into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-1000000}
EVENTS=${EVENTS:-30000000}
REPEAT=${REPEAT:-1000}
DUCK_REPEAT=${DUCK_REPEAT:-30}
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import duckdb" 2>/dev/null || .venv/bin/pip install -q duckdb==2.0.0
cargo build --release -q -p shopgrowth
DIR=${DIR:-$(mktemp -d)}
mkdir -p "$DIR"
target/release/shopgrowth --json bench segments --users "$USERS" --events "$EVENTS" \
  --repeat "$REPEAT" --out "$DIR" > "$DIR/ours.json"
TODAY=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['today'])" "$DIR/ours.json")
.venv/bin/python bench/segments_duckdb.py "$DIR" "$TODAY" "$DUCK_REPEAT" > "$DIR/duckdb.json"
.venv/bin/python - "$DIR" <<'PY'
import json, sys
d = sys.argv[1]
ours, duck = json.load(open(f"{d}/ours.json")), json.load(open(f"{d}/duckdb.json"))
print(f"{ours['users']} users, {ours['events']} events, {ours['orders']} orders, {ours['tags']} tags; "
      f"audience built in {ours['build_seconds']:.1f}s; DuckDB {duck['version']} ({duck['threads']} threads) "
      f"loaded {duck['acts']} acts in {duck['load_seconds']:.1f}s")
print("| question | matched (ours / DuckDB) | shopgrowth p50 / p99 | DuckDB p50 / p99 | DuckDB p50 ÷ ours |")
print("|---|---|---|---|---|")
for i, (q, r) in enumerate(zip(ours["questions"], duck["questions"]), 1):
    agree = "same" if q["matched"] == r["matched"] else "DIFFERENT"
    print(f"| Q{i} `{q['expr']}` | {q['matched']} / {r['matched']} ({agree}) | "
          f"{q['p50_ms']:.2f} / {q['p99_ms']:.2f} ms | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms | "
          f"{r['p50_ms'] / max(q['p50_ms'], 1e-9):.0f}× |")
PY
