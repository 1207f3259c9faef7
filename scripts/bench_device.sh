#!/usr/bin/env bash
# The device benchmark in one command (see scripts/bench_device.py for what it measures):
#   bash scripts/bench_device.sh                      # GPU/TPU: runs/bench_device/bench.{json,md}
#   bash scripts/bench_device.sh --dry-run --out runs/bench_device_dry   # CPU check, ~1 min
# Runs with the python on PATH ($PYTHON to choose another), the repository on PYTHONPATH.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python}" scripts/bench_device.py "$@"
