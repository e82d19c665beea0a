#!/usr/bin/env bash
# Set up a development environment: a virtual environment (outside the checkout, reused when
# present: torch is a ~3 GB download), the native module built in release mode and installed
# into it (editable: the Python sources are this checkout's) with the test dependencies.
# Source it to keep the venv active:
#   source scripts/setup.sh
# The build is skipped when nothing it depends on changed since the last one (the Rust sources,
# Cargo.toml/Cargo.lock, pyproject.toml and the checkout's location; stamp kept in the venv) and
# the installed snnsim is this checkout's. SNNSIM_REBUILD=1 forces it.
set -euo pipefail
SNNSIM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SNNSIM_VENV:-$HOME/.cache/snnsim/venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

snnsim_build_stamp() {
    (
        cd "$SNNSIM_ROOT"
        echo "$SNNSIM_ROOT"
        cat pyproject.toml Cargo.toml Cargo.lock
        find rust -type f | LC_ALL=C sort | while read -r f; do echo "$f"; cat "$f"; done
    ) | sha256sum | cut -d' ' -f1
}

STAMP_FILE="$VENV/.snnsim-build-stamp"
STAMP="$(snnsim_build_stamp)"
if [ "${SNNSIM_REBUILD:-0}" != "1" ] && [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP" ] \
    && SNNSIM_ROOT="$SNNSIM_ROOT" python - <<'PY' 2>/dev/null
import os, sys
import snnsim, snnsim._core, rich  # noqa: E401,F401
root = os.path.join(os.environ["SNNSIM_ROOT"], "python") + os.sep
sys.exit(0 if os.path.abspath(snnsim.__file__).startswith(root) else 1)
PY
then
    echo "== snnsim is built and installed for this checkout in $VENV (unchanged; skipping the build)"
else
    if ! command -v maturin >/dev/null 2>&1; then
        python -m pip install -q "maturin>=1.8,<2"
    fi
    echo "== building snnsim (release) and installing its test dependencies into $VENV"
    (cd "$SNNSIM_ROOT" && maturin develop --release -E test)
    echo "$STAMP" > "$STAMP_FILE"
fi
