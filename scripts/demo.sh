#!/usr/bin/env bash
# Set everything up (skipped when already done), then run the demo: train a DSR CNN on the bundled
# MNIST-5k, export it to int8, run and verify it in the engine, compare speed and energy, and
# write a report (runs/demo/report/). Arguments go to `snnsim demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec python -m snnsim demo "$@"
