#!/usr/bin/env bash
# HTTP batch ingest on the embedded store with durable acknowledgement (SQLite WAL,
# synchronous=FULL, group commit): `shopgrowth bench ingest` posts batches of 500 synthetic events
# from a separate process over loopback and reports events/s and latency percentiles. The server
# and the load generator share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-1000000}
BATCH=${BATCH:-500}
CONCURRENCY=${CONCURRENCY:-8}
cargo build --release -q -p shopgrowth
TMP=$(mktemp -d)
# BIN=path/to/another/build compares builds (the script still builds its own first).
BIN=${BIN:-target/release/shopgrowth}
export SHOPGROWTH_PII_KEY=$($BIN pii-key generate) SHOPGROWTH_LOG=warn
KEY=$($BIN --data-dir "$TMP" keys create --name bench --scopes ingest 2>/dev/null)
$BIN --data-dir "$TMP" serve --listen 127.0.0.1:18080 > "$TMP/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/health >/dev/null && break; sleep 0.1; done
echo "nproc: $(nproc); events: $EVENTS; batch: $BATCH; concurrency: $CONCURRENCY"
$BIN bench ingest --url http://127.0.0.1:18080 --key "$KEY" --events "$EVENTS" --batch "$BATCH" --concurrency "$CONCURRENCY"
