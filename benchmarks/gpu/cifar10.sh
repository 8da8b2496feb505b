#!/usr/bin/env bash
# On a machine with a CUDA GPU: time one cifar10-5c epoch at batch 100, then a short training.
#   bash benchmarks/gpu/cifar10.sh [DATA_DIR] [EPOCHS]
# DATA_DIR must hold cifar-10-batches-py (build it from the shared JPEGs with
#   python ../shared/data/cifar10/build_batches.py DATA_DIR).
# Writes benchmarks/results/gpu_cifar10_{epoch,train}/ run directories and prints the summaries.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
DATA=${1:-/tmp/cifar10}
EPOCHS=${2:-10}
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU: this script is for a GPU machine"
print("GPU:", torch.cuda.get_device_name(0))
PY
OUT=benchmarks/results
rm -rf "$OUT/gpu_cifar10_epoch" "$OUT/gpu_cifar10_train"
# one epoch at batch 100, bf16 dynamics and torch.compile on
stochep train --preset cifar10-5c --data-dir "$DATA" --epochs 1 --batch-size 100 \
  --set device=cuda --set dynamics_dtype=bfloat16 --set compile=true \
  --out "$OUT/gpu_cifar10_epoch" --no-progress
cat "$OUT/gpu_cifar10_epoch/summary.json"
# a short training run of the same preset
stochep train --preset cifar10-5c --data-dir "$DATA" --epochs "$EPOCHS" \
  --set device=cuda --set dynamics_dtype=bfloat16 --set compile=true \
  --out "$OUT/gpu_cifar10_train" --no-progress
cat "$OUT/gpu_cifar10_train/summary.json"
