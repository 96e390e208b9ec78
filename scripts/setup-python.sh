#!/usr/bin/env bash
# Creates the repo-local .venv and installs the Python side (training package + test/bench peers).
# Idempotent: reinstalls only when the requirement files change (stamp = their hash).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.dmlkit-requirements
want="$(cat scripts/requirements.txt training/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: installing Python requirements into .venv (first time: several minutes)" >&2
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -r scripts/requirements.txt
.venv/bin/pip install -q --no-deps -e training
echo "$want" > "$stamp"
