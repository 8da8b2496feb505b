#!/usr/bin/env bash
# Same numbers before and after a refactor: train three short runs (the digits default, --algo
# bptt, a small conv net), one epoch of 8 synthetic images through the cifar10-5c-cpu-fast preset
# and of 8 synthetic reviews through imdb-1ha1fc-cpu, and print a sha256 prefix of each one's
# weights.
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
import torch
from stochep import Dataset, load_preset
g = torch.Generator().manual_seed(0)
y = torch.arange(8) % 2
short = ["T_free=6", "T_nudge=3", "batch_size=4", "epochs=1", "val_fraction=0.0",
         "calibrate_rate=0.0", "average_last=2"]
x = torch.rand(8, 3, 32, 32, generator=g)
ds = Dataset("cifar10", x, y, x, y, 10)
Trainer(load_preset("cifar10-5c-cpu-fast").apply_overrides(short), ds,
        sys.argv[1] + "/cifar", progress=False).fit()
ids = torch.randint(1, 51, (8, 256), generator=g).float()
emb = torch.randn(51, 8, generator=g) * 0.1
emb[0] = 0
ds = Dataset("imdb", ids, y, ids, y, 2, embedding=emb)
Trainer(load_preset("imdb-1ha1fc-cpu").apply_overrides(short), ds,
        sys.argv[1] + "/imdb", progress=False).fit()
PY
python - $OUT <<'PY'
import hashlib, sys, torch
for name in ("digits", "bptt", "conv", "cifar", "imdb"):
    ck = torch.load(f"{sys.argv[1]}/{name}/checkpoint_last.pt", weights_only=True)
    h = hashlib.sha256()
    for k in sorted(ck["model"]):
        h.update(k.encode()); h.update(ck["model"][k].detach().cpu().contiguous().numpy().tobytes())
    print(name, h.hexdigest()[:16])
PY
