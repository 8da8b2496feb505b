#!/usr/bin/env bash
# On a machine with a CUDA GPU: the full imdb-1ha1fc preset (Table 3: T 150 + 50 + 50, batch 25,
# AdamW 1e-5, 200 epochs by default), then the EP vs BPTT memory of one step at batch 64
# (Table 2's IMDB column).
#   bash benchmarks/gpu/imdb.sh [DATA_DIR] [EPOCHS] [GLOVE_FILE]
# DATA_DIR holds aclImdb/ or its .tar.gz (e.g. ../shared/data/imdb). The word vectors are the
# first glove*.txt[.gz] beside the data or in DATA_DIR/../glove; the paper's are 300-d: pass
# GLOVE_FILE (e.g. glove.6B.300d.txt), which sets STOCHEP_GLOVE.
# Writes benchmarks/results/gpu_imdb_train/ and prints its summary.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
DATA=${1:-../shared/data/imdb}
EPOCHS=${2:-200}
GLOVE=${3:-}
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU: this script is for a GPU machine"
print("GPU:", torch.cuda.get_device_name(0))
PY
if [ -n "$GLOVE" ]; then export STOCHEP_GLOVE=$GLOVE; fi
OUT=benchmarks/results
rm -rf "$OUT/gpu_imdb_train"
stochep train --preset imdb-1ha1fc --data-dir "$DATA" --epochs "$EPOCHS" \
  --set device=cuda --out "$OUT/gpu_imdb_train" --no-progress
cat "$OUT/gpu_imdb_train/summary.json"
stochep memory --preset imdb-1ha1fc --batch-size 64 --device cuda
