# Sourced by scripts/test: Debian's packages that tests use as a person would, installed when
# missing: a headless Chromium (the report test opens monitoring's HTML page in it) and h2load
# (the overload test sends an open-loop burst no Python client on 2 cores could send).
ensure_command() {  # ensure_command <command> <package>
    if command -v "$1" >/dev/null 2>&1; then
        return
    fi
    echo "==> installing $2 (for $1)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ -z "${_APT_UPDATED:-}" ]; then
        $sudo apt-get update -qq
        _APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}
