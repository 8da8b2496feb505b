#!/usr/bin/env bash
# First contact with a GPU, before check.sh (90 s at most): NCCL with a float64 all-reduce, host
# syncs of one tiny epoch, a profile of cifar10-5c steps, diagnose, compile, the bf16 uniform
# maximum, a deterministic cifar10-5c row. Writes OUTDIR/gpu_first_contact.json (docs/gpu.md).
#
#   bash benchmarks/gpu/first_contact.sh OUTDIR [--device cuda|cpu] [--quick] [--with-compile]
set -uo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { sed -n '2,7p' "$0"; exit 2; }
OUT=$1; shift
mkdir -p "$OUT"
export PYTHONPATH="$(pwd)/src${PYTHONPATH:+:$PYTHONPATH}" STOCHEP_RESULTS_DIR="$OUT"
timeout 100 "${PYTHON:-python}" benchmarks/gpu/first_contact.py --out "$OUT" "$@"
