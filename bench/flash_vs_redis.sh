#!/usr/bin/env bash
# Flash sale (秒杀) on one node over HTTP on loopback, next to Redis running the usual Lua
# check-and-decrement, both driven by the same client (`shopgrowth bench flash`) in one run:
# 10,000 stock, 200,000 attempts from 256 concurrent clients. The server uses the embedded store
# (SQLite WAL, synchronous=FULL: every hold is durable before it is acknowledged). Redis runs
# twice: with persistence off, as flash-sale caches usually do (the baseline the goal names), and
# with every write fsynced to its append-only file before it answers (appendfsync always), which
# is what the server promises for a hold. Installs redis-server from Debian if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
STOCK=${STOCK:-10000}
ATTEMPTS=${ATTEMPTS:-200000}
CLIENTS=${CLIENTS:-256}
if ! command -v redis-server >/dev/null; then
    as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
fi
cargo build --release -q -p shopgrowth
TMP=$(mktemp -d)
# BIN=path/to/another/build compares builds (the script still builds its own first).
BIN=${BIN:-target/release/shopgrowth}
export SHOPGROWTH_PII_KEY=$($BIN pii-key generate) SHOPGROWTH_LOG=warn
KEY=$($BIN --data-dir "$TMP" keys create --name bench --scopes admin 2>/dev/null)
$BIN --data-dir "$TMP" serve --listen 127.0.0.1:18081 > "$TMP/serve.log" 2>&1 &
SERVER=$!
redis-server --port 56379 --save '' --appendonly no --daemonize no > "$TMP/redis.log" 2>&1 &
REDIS=$!
mkdir "$TMP/aof"
redis-server --port 56380 --save '' --appendonly yes --appendfsync always --dir "$TMP/aof" \
    --daemonize no > "$TMP/redis-durable.log" 2>&1 &
DURABLE=$!
trap 'kill $SERVER $REDIS $DURABLE 2>/dev/null; wait $SERVER $REDIS $DURABLE 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:18081/health >/dev/null && break; sleep 0.1; done
echo "nproc: $(nproc); $(redis-server --version | cut -d' ' -f1-3); stock $STOCK, attempts $ATTEMPTS, clients $CLIENTS"
$BIN bench flash --url http://127.0.0.1:18081 --key "$KEY" --stock "$STOCK" --attempts "$ATTEMPTS" \
    --clients "$CLIENTS" --redis 127.0.0.1:56379 \
    --redis-durable 127.0.0.1:56380 "$@"
