#!/usr/bin/env bash
# A/B of one of the runtime's off switches (DMLKIT_SAMPLE_THREADS, DMLKIT_WINOGRAD, ...): the same models through
# `runtime-bench latency` with the switch left alone and set to off, interleaved, at 1 and 2 threads, batch 1 and
# 16, ROUNDS rounds (default 3). Prints one line per process: round model threads batch setting JSON.
#   bench/runtime/ab.sh DMLKIT_SAMPLE_THREADS "$(swift build -c release --show-bin-path)/runtime-bench" WORK mobilenet_v2 ...
# WORK holds MODEL.safetensors (bench/runtime/run.py --work WORK exports them).
set -euo pipefail
switch=$1 binary=$2 work=$3
shift 3
for round in $(seq "${ROUNDS:-3}"); do
  for model in "$@"; do
    for threads in 1 2; do
      for batch in 1 16; do
        if [ "$batch" = 1 ]; then calls=60 budget=3; else calls=12 budget=8; fi
        for setting in on off; do
          result=$(env OMP_NUM_THREADS="$threads" "$switch=$setting" "$binary" latency "$work/$model.safetensors" \
            "$batch" "$calls" "$threads" "$budget" | tail -1)
          echo "$round $model $threads $batch $setting $result"
        done
      done
    done
  done
done
