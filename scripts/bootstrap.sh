# Sourced by the other scripts: a project virtualenv with every dependency pinned by
# requirements.lock. Re-installs only when pyproject.toml or the lock changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

# A venv whose creation was interrupted has a python but no pip: made again.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv --clear "$VENV"
fi
UV_VERSION=0.13.10
STAMP="$VENV/.skewless-installed"
WANT="$( (cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock"; echo "$UV_VERSION") | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "==> installing skewless and its pinned dependencies (under a minute on a fresh machine)"
    # uv installs the same pinned set as pip, in seconds instead of a minute and a half.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    # Compiled at install, as pip does: with PYTHONDONTWRITEBYTECODE set, nothing would ever
    # cache it, and every process would compile its imports again (seconds for Feast alone).
    "$VENV/bin/uv" pip install --quiet --compile-bytecode --python "$VENV/bin/python" \
        -c "$ROOT/requirements.lock" -e "$ROOT[dev]"
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# The project's own modules cached as bytecode (__pycache__, ignored by git), as Python does by
# default: a host that sets PYTHONDONTWRITEBYTECODE makes every command and service compile the
# app again at its start (~1 s each here; the test suite starts hundreds).
unset PYTHONDONTWRITEBYTECODE
source "$ROOT/scripts/protos.sh"
generate_protos
