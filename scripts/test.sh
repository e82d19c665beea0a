#!/usr/bin/env bash
# The test command: the lint contract (scripts/lint.sh), Rust unit tests, then the Python suite
# (hypothesis profile "ci" unless HYPOTHESIS_PROFILE says otherwise). Expects the native module
# built into the active venv.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lint.sh
echo "== cargo test"
cargo test --release
echo "== pytest"
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
python -m pytest -q -p no:cacheprovider tests
