#!/usr/bin/env bash
# ALS side by side with the `implicit` package (PyPI) on the same protocol-B split of MovieLens 1M:
# same factors, regularisation, confidence scale, iterations, conjugate-gradient steps (3) and
# threads (all cores). Reports training time and nDCG@10 of each, and the ratio.
# Needs ../shared/data/movielens_1m; installs implicit with pip if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/movielens_1m/ratings_no_timestamp.csv.gz}
FACTORS=${FACTORS:-64} REG=${REG:-0.05} ALPHA=${ALPHA:-10} ITERATIONS=${ITERATIONS:-15}
if [ ! -f "$DATA" ]; then echo "benchmark not run: $DATA is missing (../shared beside the repository)"; exit 1; fi
python3 -c 'import implicit, threadpoolctl' 2>/dev/null || pip install --quiet implicit threadpoolctl
cargo build --release --quiet -p shopgrowth
SPLIT=$(mktemp -d)
trap 'rm -rf "$SPLIT"' EXIT
./target/release/shopgrowth --json recommend eval --protocol b --data "$DATA" --models als \
  --factors "$FACTORS" --regularization "$REG" --alpha "$ALPHA" --iterations "$ITERATIONS" \
  --write-split "$SPLIT" 2>/dev/null > "$SPLIT/ours.json"
python3 bench/implicit_als.py "$SPLIT" "$FACTORS" "$REG" "$ALPHA" "$ITERATIONS" > "$SPLIT/theirs.json"
python3 - "$SPLIT" <<'PY'
import json, sys
d = sys.argv[1]
ours = json.load(open(f"{d}/ours.json"))["rows"][0]
theirs = json.load(open(f"{d}/theirs.json"))
print(f"shopgrowth ALS : fit {ours['fit_seconds']:.2f}s  nDCG@10 {ours['ndcg']:.4f}  ({ours['params']})")
print(f"implicit {theirs['version']} : fit {theirs['fit_seconds']:.2f}s  nDCG@10 {theirs['ndcg']:.4f}")
print(f"training time ratio (implicit / shopgrowth): {theirs['fit_seconds'] / ours['fit_seconds']:.2f}x")
PY
