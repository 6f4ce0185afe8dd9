# Sourced by scripts/test: make sure a PostgreSQL server answers on 127.0.0.1:5432 for the
# shared-registry tests (tests/integration/test_shared_registry.py, which make a database of
# their own per test). If none does, install PostgreSQL (Debian) when missing and start a
# private server with trust authentication; stop only that one on exit.
PG_PORT="${SKEWLESS_TEST_POSTGRES_PORT:-5432}"

as_postgres() {
    # initdb refuses to run as root: the server's files belong to the postgres user.
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

postgres_answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null
}

ensure_postgres() {
    if postgres_answers; then
        echo "==> PostgreSQL answers on 127.0.0.1:$PG_PORT"
        export SKEWLESS_TEST_POSTGRES="${SKEWLESS_TEST_POSTGRES:-postgresql://127.0.0.1:$PG_PORT/test}"
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
