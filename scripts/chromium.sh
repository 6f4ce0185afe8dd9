# Sourced by scripts/test: a headless Chromium for the test that opens monitoring's HTML report
# as a person would (Debian's package; installed when missing).
ensure_chromium() {
    if command -v chromium >/dev/null 2>&1; then
        return
    fi
    echo "==> installing chromium (headless browser for the report test)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
}
