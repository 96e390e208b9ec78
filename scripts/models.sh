#!/usr/bin/env bash
# Retrains every shipped model in models/ from scratch with its fixed seed (the command is also in each model
# card), through experiments/people_models.py (which runs the dmlkit package's people experiment). CPU, 1 thread
# per training process, two at a time: about 40 minutes on this 2-core machine for the six 64 px CNNs (data 6 min,
# caption embeddings 5 min, label-space neighbours 3 min, trainings of ~5-8 min), then the ResNet-style models on
# 112 px crops of 160 px people (data 10 min, pose 30 min, caption 3-4 hours; `--device cuda` trains on a GPU),
# then each card's score section through the
# release `dml` (`make models` builds it; `DML_BIN` names another). Extra arguments go to people_models.py, e.g. a
# smoke run: scripts/models.sh --count 300 --split 200 40 60 --steps 5 --out out/smoke --models-dir out/smoke/models
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# this checkout's dmlkit (the one `pip install -e training` installs in the main checkout)
export PYTHONPATH="$ROOT/training${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python experiments/people_models.py shipped "$@"
