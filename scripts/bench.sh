#!/usr/bin/env bash
# Runs every benchmark harness (bench/*/run.py); each rewrites its own section of bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release
for harness in bench/*/run.py; do
  echo "== $harness" >&2
  .venv/bin/python "$harness" "$@"
done
