#!/usr/bin/env bash
# Table 1's CIFAR-10 block at reduced width: every rule on the cifar10-5c-cpu-fast network and
# data split (45,000 training images, 5,000 for validation, the 10,000 test images) for the same
# 3 epochs, one run after another on one core; then BPTT on a twice-wider net with the budget of
# the stochastic-EP row's training time (the capacity question). docs/results.md#table-1-at-reduced-width.
#   bash benchmarks/learning/table1.sh RUNS_DIR        (about 2 hours; rerun to resume)
# CIFAR-10 batches: STOCHEP_CIFAR10_DIR (python ../shared/data/cifar10/build_batches.py DIR).
set -uo pipefail  # a failed row is reported and the next one runs
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUNS=${1:-/tmp/table1}
M=cifar10-5c-cpu-fast
row() {  # row TAG [--set k=v ...]: trains, or resumes an interrupted run, or skips a finished one
  local tag=$1; shift
  [ -f "${STOCHEP_RESULTS_DIR:-benchmarks/results}/train_$M-t1-$tag.json" ] && return 0
  local resume=(); [ -f "$RUNS/$tag/checkpoint_last.pt" ] && resume=(--resume)
  python benchmarks/learning/train_preset.py --model $M --tag="-t1-$tag" --out "$RUNS/$tag" \
    --minutes "${MINUTES:-600}" --set epochs="${EPOCHS:-3}" "${resume[@]}" "$@" || echo "row $tag failed"
}
row ep                           # stochastic EP (Bernoulli spikes), the preset itself
row bptt      --set algo=bptt    # BPTT through the same spiking dynamics, the preset's bptt section
row rate      --set spikes=rate  # full-precision EP: mean-field rates instead of spikes
row poisson   --set spikes=poisson
row id        --set algo=id      # implicit differentiation
row fa        --set algo=fa      # feedback alignment
WIDE='layers=[{conv: 16, kernel: 5, padding: 2, pool: 2}, {conv: 32, kernel: 5, padding: 2, pool: 2}, {conv: 64, kernel: 5, padding: 2, pool: 2}, {conv: 64, kernel: 5, padding: 2, pool: 2}]'
# BPTT at 1/4 width within the stochastic-EP row's training minutes (one epoch fits)
MINUTES=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['train_minutes'] * 1.1)" \
  "${STOCHEP_RESULTS_DIR:-benchmarks/results}/train_$M-t1-ep.json") EPOCHS=1 \
  row bptt-wide --set algo=bptt --set "$WIDE"
EPOCHS=3 row bptt-wide-e3 --set algo=bptt --set "$WIDE"  # and for the same 3 epochs
