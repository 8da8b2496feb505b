#!/usr/bin/env bash
# Same numbers before and after a refactor: train three short runs (the digits default, --algo
# bptt, a small conv net) and print a sha256 prefix of each checkpoint's weights.
#   bash benchmarks/checksums.sh [OUTDIR]
set -e
OUT=${1:-/tmp/ck}
rm -rf $OUT; mkdir -p $OUT
export OMP_NUM_THREADS=1
stochep train --epochs 1 --out $OUT/digits --no-progress --seed 0 > /dev/null
stochep train --epochs 1 --algo bptt --out $OUT/bptt --no-progress --seed 0 > /dev/null
python - $OUT <<'PY'
import sys
from stochep import Config
from stochep import Trainer
from stochep.data import load_dataset
d = load_dataset("digits")
d.x_train = d.x_train.reshape(-1, 1, 8, 8); d.x_test = d.x_test.reshape(-1, 1, 8, 8)
cfg = Config()
cfg.apply_overrides(["layers=[{conv: 4, kernel: 3, padding: 1, pool: 2}]", "T_free=10", "T_nudge=4", "epochs=1"])
Trainer(cfg, d, sys.argv[1] + "/conv", progress=False).fit()
PY
python - $OUT <<'PY'
import hashlib, sys, torch
for name in ("digits", "bptt", "conv"):
    ck = torch.load(f"{sys.argv[1]}/{name}/checkpoint_last.pt", weights_only=True)
    h = hashlib.sha256()
    for k in sorted(ck["model"]):
        h.update(k.encode()); h.update(ck["model"][k].detach().cpu().contiguous().numpy().tobytes())
    print(name, h.hexdigest()[:16])
PY
