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

as_pg "$PGBIN/initdb" -D "$PGDATA" -A trust -U postgres >/dev/null
# A port another program holds is not fatal: the next ones are tried. A start that fails shows
# the server's own log, so the reason is in the test output.
started=
for port in "$PGPORT" $((PGPORT + 1)) $((PGPORT + 2)); do
    echo "== starting postgresql on 127.0.0.1:$port"
    if as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
        -o "-p $port -k $PGDATA -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" \
        start >/dev/null; then
        started=$port
        break
    fi
    echo "   postgresql did not start; its log:" >&2
    tail -n 20 "$PGDATA/server.log" >&2 || true
done
[ -n "$started" ] || { echo "postgresql could not be started" >&2; exit 1; }
export SHOPGROWTH_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$started/postgres"

echo "== cargo test --workspace"
cargo test --workspace --all-targets --locked "$@"
