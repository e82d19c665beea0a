#!/usr/bin/env bash
# Set everything up, then run the demo on bundled data.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec python examples/quickstart.py "$@"
