#!/usr/bin/env bash
# Flash sale (秒杀) on two server nodes sharing one PostgreSQL, next to the plain baseline of a
# single-row conditional UPDATE on the same server, both driven by the same client
# (`shopgrowth bench flash`) in one run: 10,000 stock, 200,000 attempts from 256 concurrent
# clients, spread over both nodes. Installs PostgreSQL from Debian if it is missing and runs a
# throwaway server (default settings, fsync on) on 127.0.0.1:55434.
set -euo pipefail
cd "$(dirname "$0")/.."
STOCK=${STOCK:-10000}
ATTEMPTS=${ATTEMPTS:-200000}
CLIENTS=${CLIENTS:-256}
# Holds must outlast the stampede (a hold that lapses mid-stampede puts its unit back on sale and
# the resale counts as one more order); on 2 shared cores two nodes take longer than 30 s.
HOLD=${HOLD:-90}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGDATA=$(mktemp -d /tmp/shopgrowth-benchpg.XXXXXX)
if [ "$(id -u)" = 0 ]; then chown postgres "$PGDATA"; as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi
cargo build --release -q -p shopgrowth
TMP=$(mktemp -d)
BIN=target/release/shopgrowth
PIDS=()
cleanup() {
    kill "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$TMP" "$PGDATA"
}
trap cleanup EXIT
as_pg "$PGBIN/initdb" -D "$PGDATA" -A trust -U postgres >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
    -o "-p 55434 -k $PGDATA -c listen_addresses=127.0.0.1 -c max_connections=400" start >/dev/null
export SHOPGROWTH_DATABASE_URL="postgres://postgres@127.0.0.1:55434/postgres"
export SHOPGROWTH_PII_KEY=$($BIN pii-key generate) SHOPGROWTH_LOG=error
KEY=$($BIN keys create --name bench --scopes admin 2>/dev/null)
for port in 18082 18083; do
    $BIN serve --listen 127.0.0.1:$port > "$TMP/serve-$port.log" 2>&1 &
    PIDS+=($!)
done
for port in 18082 18083; do
    for _ in $(seq 200); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 0.1; done
done
echo "nproc: $(nproc); $($PGBIN/postgres --version); 2 nodes; stock $STOCK, attempts $ATTEMPTS, clients $CLIENTS"
$BIN bench flash --url http://127.0.0.1:18082 --also http://127.0.0.1:18083 --key "$KEY" \
    --stock "$STOCK" --attempts "$ATTEMPTS" --clients "$CLIENTS" --hold-seconds "$HOLD" \
    --pg-baseline "$SHOPGROWTH_DATABASE_URL" "$@"
