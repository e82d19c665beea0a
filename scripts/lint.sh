#!/usr/bin/env bash
# The lint contract (run first by scripts/test.sh): ruff lint and format check over the whole
# checkout, mypy on the package (configuration in pyproject.toml), rustfmt and clippy with
# warnings as errors. Expects the venv of scripts/setup.sh (ruff and mypy come with the test
# extra) and a Rust toolchain with rustfmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff check"
ruff check .
echo "== ruff format --check"
ruff format --check .
echo "== mypy python/snnsim"
mypy python/snnsim
echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --release --all-targets -- -D warnings"
cargo clippy --release --all-targets -- -D warnings
