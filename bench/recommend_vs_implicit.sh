#!/usr/bin/env bash
# ALS side by side with the `implicit` package (PyPI) on the same protocol-B split of MovieLens 1M:
# same factors, regularisation, confidence scale, iterations, conjugate-gradient steps (3) and
# threads (all cores). Each tool runs once per seed (SEEDS, default "1 2 3": the seed draws the
# starting factors; the split stays seed 42). Reports training time and nDCG@10 of each run, the
# means, and the ratio of mean training times.
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
SEEDS=${SEEDS:-"1 2 3"}
./target/release/shopgrowth --json recommend eval --protocol b --data "$DATA" --models popularity \
  --write-split "$SPLIT" 2>/dev/null > /dev/null
for seed in $SEEDS; do
  # ALS's seed only draws its starting factors; the split is always seed 42.
  ./target/release/shopgrowth --json recommend eval --protocol b --data "$DATA" --models als \
    --factors "$FACTORS" --regularization "$REG" --alpha "$ALPHA" --iterations "$ITERATIONS" \
    --als-seed "$seed" 2>/dev/null > "$SPLIT/ours-$seed.json"
  OPENBLAS_NUM_THREADS=1 python3 bench/implicit_als.py "$SPLIT" "$FACTORS" "$REG" "$ALPHA" "$ITERATIONS" 10 "$seed" \
    > "$SPLIT/theirs-$seed.json"
done
python3 - "$SPLIT" $SEEDS <<'PY'
import json, sys
d, seeds = sys.argv[1], sys.argv[2:]
ours = [json.load(open(f"{d}/ours-{s}.json"))["rows"][0] for s in seeds]
theirs = [json.load(open(f"{d}/theirs-{s}.json")) for s in seeds]
for s, o, t in zip(seeds, ours, theirs):
    print(f"seed {s}: shopgrowth fit {o['fit_seconds']:.2f}s nDCG@10 {o['ndcg']:.4f} | implicit fit {t['fit_seconds']:.2f}s nDCG@10 {t['ndcg']:.4f}")
mean = lambda xs: sum(xs) / len(xs)
of, on = mean([o['fit_seconds'] for o in ours]), mean([o['ndcg'] for o in ours])
tf, tn = mean([t['fit_seconds'] for t in theirs]), mean([t['ndcg'] for t in theirs])
print(f"shopgrowth ALS : mean fit {of:.2f}s  mean nDCG@10 {on:.4f}  ({ours[0]['params']})")
print(f"implicit {theirs[0]['version']} : mean fit {tf:.2f}s  mean nDCG@10 {tn:.4f}")
print(f"training time ratio (implicit / shopgrowth): {tf / of:.2f}x; nDCG difference {on - tn:+.4f}")
PY
