#!/usr/bin/env bash
# The measurements of docs/baselines.md, one after another on one core (about 90 minutes on the
# 2-core CPU): neuron-model accuracy at equal budget, the figures of `stochep analyze`
# (docs/figures/), and FA / ID / EP on the reduced 5C (README command B's network) at an equal
# 10-minute budget.
# CIFAR-10 batches: STOCHEP_CIFAR10_DIR (python ../shared/data/cifar10/build_batches.py DIR).
set -uo pipefail  # a failed step is reported and the next one runs
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MNIST=${STOCHEP_MNIST_DIR:-../shared/data/mnist}
FIG=docs/figures
python benchmarks/learning/neuron_models.py --preset mnist-1fc --train-subset 10000 --epochs 1
stochep analyze stability --preset mnist-1fc --data-dir "$MNIST" --train-subset 10000 --out $FIG
REDUCED='layers=[{conv: 8, kernel: 5, padding: 2, pool: 2}, {conv: 16, kernel: 5, padding: 2, pool: 2}, {conv: 32, kernel: 5, padding: 2, pool: 2}, {conv: 32, kernel: 5, padding: 2, pool: 2}]'
for algo in fa id ep; do
  python benchmarks/learning/train_preset.py --model cifar10-5c --tag="-$algo-10min" --minutes 10 \
    --train-subset 5000 --set "$REDUCED" --set T_free=100 --set T_nudge=25 --set batch_size=32 \
    --set augment=false --set epochs=30 --set scheduler=none --set algo=$algo
done
stochep analyze firing --preset mnist-1fc --data-dir "$MNIST" --train-subset 10000 --out $FIG
stochep analyze mean-field --preset mnist-1fc --data-dir "$MNIST" --out $FIG
stochep analyze error-signal --preset cifar10-5c --data-dir "${STOCHEP_CIFAR10_DIR:-/tmp/cifar10}" \
  --set "$REDUCED" --set T_free=100 --out $FIG
