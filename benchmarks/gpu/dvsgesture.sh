#!/usr/bin/env bash
# On a machine with a CUDA GPU where DVS Gesture has been placed: the full dvsgesture-3c preset.
#   bash benchmarks/gpu/dvsgesture.sh DATA_DIR [EPOCHS]
# DATA_DIR holds Tonic's layout: DVSGesture/ibmGestureTrain|ibmGestureTest/user<NN>_<light>/<label>.npy
# Frames are cached under $STOCHEP_CACHE (default ~/.cache/stochep) on first use.
# Resumes the run in benchmarks/results/runs/gpu_dvsgesture-3c if it exists; prints its summary.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
DATA=${1:?usage: bash benchmarks/gpu/dvsgesture.sh DATA_DIR [EPOCHS]}
EPOCHS=${2:-100}
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU: this script is for a GPU machine"
print("GPU:", torch.cuda.get_device_name(0))
PY
OUT=benchmarks/results/runs/gpu_dvsgesture-3c
if [ -f "$OUT/checkpoint_last.pt" ]; then
  stochep train --resume --out "$OUT" --epochs "$EPOCHS" --no-progress
else
  stochep train --preset dvsgesture-3c --data-dir "$DATA" --epochs "$EPOCHS" \
    --set device=cuda --set dynamics_dtype=bfloat16 --out "$OUT" --no-progress
fi
cat "$OUT/summary.json"
python benchmarks/learning/collect_run.py "$OUT" train_dvsgesture-3c-gpu.json \
  --command "bash benchmarks/gpu/dvsgesture.sh $DATA $EPOCHS"
