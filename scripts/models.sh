#!/usr/bin/env bash
# Retrains every shipped model in models/ from scratch with its fixed seed (see each model card).
# CPU, 1 thread per process: about 10 minutes for data + neighbours + training on this 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../training"
PY=../.venv/bin/python
DATA=../out/people/synth-s0-n10000
if [ ! -f "$DATA/person_keypoints.json" ]; then
  $PY -m dmlkit.data.people.generate --out "$DATA" --count 10000 --seed 0 --size 64 --quiet
fi
$PY -m dmlkit.experiments.people --data "$DATA" --train 8000 --queries 400 --gallery 1600 --dim 128 --steps 1500 \
    --seed 0 --out ../out/people/pose-lr-d128-s0 --export ../models/pose-logratio-d128.safetensors
