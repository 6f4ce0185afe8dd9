# Sourced by scripts/test: make sure a Redis server answers on 127.0.0.1:${SKEWLESS_TEST_REDIS_PORT}.
# If none does, install redis-server (Debian) when missing and start one; stop only that one
# on exit.
REDIS_PORT="${SKEWLESS_TEST_REDIS_PORT:-6379}"

redis_answers() {
    # No redis-cli needed: speak RESP over bash's /dev/tcp.
    (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" && printf 'PING\r\n' >&3 &&
        timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null
}

ensure_redis() {
    # The binary is needed even when a server answers: the serving tests start (and stop,
    # and freeze) private Redis servers of their own.
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "==> installing redis-server"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
    fi
    if redis_answers; then
        echo "==> Redis answers on 127.0.0.1:$REDIS_PORT"
        return
    fi
    local dir
    dir="$(mktemp -d)"
    echo "==> starting redis-server on 127.0.0.1:$REDIS_PORT (stopped again on exit)"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
        --appendonly no --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    STARTED_REDIS_PIDFILE="$dir/redis.pid"
    trap stop_started_redis EXIT
    for _ in $(seq 50); do redis_answers && return; sleep 0.1; done
    echo "redis-server did not answer on 127.0.0.1:$REDIS_PORT; its log:" >&2
    cat "$dir/redis.log" >&2
    exit 1
}

stop_started_redis() {
    if [ -n "${STARTED_REDIS_PIDFILE:-}" ] && [ -f "$STARTED_REDIS_PIDFILE" ]; then
        kill "$(cat "$STARTED_REDIS_PIDFILE")" 2>/dev/null || true
        echo "==> stopped the redis-server this run started"
    fi
}
