#!/usr/bin/env bash
# Retrains every shipped model in models/ from scratch with its fixed seed (the command is also in each model
# card). CPU, 1 thread per training process, two at a time: about 30 minutes on this 2-core machine
# (data 6 min, caption embeddings 5 min, label-space neighbours 3 min, four trainings of ~5 min).
set -euo pipefail
cd "$(dirname "$0")/../training"
PY=../.venv/bin/python
DATA=../out/people/synth-s0-n18000
RUNS=../out/people18
if [ ! -f "$DATA/person_keypoints.json" ]; then
  $PY -m dmlkit.data.people.generate --out "$DATA" --count 18000 --seed 0 --size 64 --captions-per-image 5 --quiet
fi
mkdir -p "$RUNS"
# people 0-7,999 train; 8,000-9,999 are held-out queries, 10,000-17,999 the held-out gallery
train() {  # LABEL DIM: log-ratio, 3,000 steps, seed 0, exported to models/LABEL-logratio-dDIM.safetensors
  $PY -m dmlkit.experiments.people --data "$DATA" --count 18000 --label "$1" --train 8000 --queries 2000 --gallery 8000 \
      --steps 3000 --loss log_ratio --dim "$2" --seed 0 --out "$RUNS/$1-log_ratio-d$2-s0" \
      --export "../models/$1-logratio-d$2.safetensors" > "$RUNS/$1-log_ratio-d$2-s0.log"
  echo "models/$1-logratio-d$2.safetensors"
}
# the first run of each label computes and caches the label-space neighbours; the second reuses them
train pose 128 & first=$!; train caption 128; wait $first
train pose 16 & first=$!; train caption 16; wait $first
