#!/usr/bin/env bash
# Set up a development environment: a virtual environment (outside the checkout, reused when
# present: torch is a ~3 GB download), the native module built in release mode and installed
# into it with the test dependencies. Source it to keep the venv active:
#   source scripts/setup.sh
set -euo pipefail
SNNSIM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SNNSIM_VENV:-$HOME/.cache/snnsim/venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
python -m pip install -q "maturin>=1.8,<2"
echo "== building snnsim (release) and installing its test dependencies into $VENV"
(cd "$SNNSIM_ROOT" && maturin develop --release -E test)
