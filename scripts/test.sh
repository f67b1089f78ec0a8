#!/usr/bin/env bash
# The whole test suite. Installs PostgreSQL from Debian if it is missing, starts a throwaway
# server on 127.0.0.1, runs every test of the workspace against it and the embedded store,
# and stops the server afterwards, whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "== installing postgresql (Debian package)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGPORT=${SHOPGROWTH_TEST_PG_PORT:-55432}
PGDATA=$(mktemp -d /tmp/shopgrowth-pg.XXXXXX)

# initdb refuses to run as root: run the server as the postgres user then.
if [ "$(id -u)" = 0 ]; then
    chown postgres "$PGDATA"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

stop_pg() {
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PGDATA"
}
trap stop_pg EXIT

echo "== starting postgresql on 127.0.0.1:$PGPORT"
as_pg "$PGBIN/initdb" -D "$PGDATA" -A trust -U postgres >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
    -o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
export SHOPGROWTH_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"

echo "== cargo test --workspace"
cargo test --workspace --all-targets --locked "$@"
