# Sourced by scripts/test: make sure a PostgreSQL answers for the shared-registry tests
# (tests/integration/test_shared_registry.py, which make a database of their own per test).
# SKEWLESS_TEST_POSTGRES, when set, is used as it is. Else the machine's server, if
# postgresql://127.0.0.1:5432/test lets this user in; else a private server (installed from
# Debian if missing) on its own port with trust authentication, stopped again on exit.
PG_URL="postgresql://127.0.0.1:5432/test"
PG_PORT="${SKEWLESS_TEST_POSTGRES_PORT:-55432}"  # the private server's: never the machine's

as_postgres() {
    # initdb refuses to run as root: the server's files belong to the postgres user.
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

postgres_lets_in() {
    # The server answers, the database exists and this user may use it (psql: the client).
    command -v psql >/dev/null 2>&1 &&
        timeout 10 psql "$1" -qAtc "select 1" >/dev/null 2>&1
}

ensure_postgres() {
    if [ -n "${SKEWLESS_TEST_POSTGRES:-}" ]; then
        echo "==> PostgreSQL for the tests: $SKEWLESS_TEST_POSTGRES (given)"
        return
    fi
    if postgres_lets_in "$PG_URL"; then
        echo "==> PostgreSQL answers at $PG_URL"
        export SKEWLESS_TEST_POSTGRES="$PG_URL"
        return
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        echo "==> installing postgresql"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    fi
    local bin dir
    bin="$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"
    dir="$(mktemp -d)"
    chmod 755 "$dir"
    $sudo chown postgres "$dir"
    echo "==> starting a PostgreSQL on 127.0.0.1:$PG_PORT (stopped again on exit)"
    as_postgres "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $dir" start >/dev/null
    STARTED_POSTGRES="$bin/pg_ctl -D $dir/data"
    trap 'stop_started_postgres; stop_started_redis' EXIT
    as_postgres "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" test
    export SKEWLESS_TEST_POSTGRES="postgresql://postgres@127.0.0.1:$PG_PORT/test"
}

stop_started_postgres() {
    if [ -n "${STARTED_POSTGRES:-}" ]; then
        as_postgres $STARTED_POSTGRES stop -m fast >/dev/null 2>&1 || true
        echo "==> stopped the PostgreSQL this run started"
    fi
}
