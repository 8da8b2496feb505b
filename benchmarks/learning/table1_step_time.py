"""Seconds per training batch of each Table 1 row's rule on the cifar10-5c-cpu-fast network (batch
32, one thread), measured side by side: the rows alternate, best of ``--repeats`` rounds, so a
load that changes during the run hits every row alike. The runs of table1.sh shared the machine
with other jobs, so their training times are not comparable; these ratios are. Writes
table1_step_time.json.

    OMP_NUM_THREADS=1 python benchmarks/learning/table1_step_time.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from stochep import Dataset, Trainer, load_preset
from stochep.tools.results import write_json

ROWS = {"ep": [], "poisson": ["spikes=poisson"], "rate": ["spikes=rate"], "bptt": ["algo=bptt"],
        "fa": ["algo=fa"], "id": ["algo=id"],
        "bptt-wide": ["algo=bptt", "layers=[{conv: 16, kernel: 5, padding: 2, pool: 2}, "
                      "{conv: 32, kernel: 5, padding: 2, pool: 2}, {conv: 64, kernel: 5, "
                      "padding: 2, pool: 2}, {conv: 64, kernel: 5, padding: 2, pool: 2}]"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 3, 32, 32, generator=g), torch.arange(64) % 10
    trainers = {}
    for name, sets in ROWS.items():
        cfg = load_preset("cifar10-5c-cpu-fast")
        cfg.apply_overrides(["calibrate_rate=0.0", "val_fraction=0.0", *sets])
        trainers[name] = Trainer(cfg, Dataset("cifar10", x, y, x, y, 10), progress=False)
    best = {name: float("inf") for name in ROWS}
    for r in range(args.repeats + 1):  # the first round warms up
        for name, tr in trainers.items():
            t = time.perf_counter()
            tr.train_step(x[:32], y[:32])
            if r:
                best[name] = min(best[name], time.perf_counter() - t)
    for name, s in best.items():
        print(f"{name}: {s:.3f} s per batch, {s / best['ep']:.2f}x stochastic EP")
    write_json("table1_step_time.json", {
        "seconds_per_batch": best, "ratio_to_ep": {n: s / best["ep"] for n, s in best.items()},
        "batch_size": 32, "repeats": args.repeats, "threads": 1,
        "load_average_1min_at_end": os.getloadavg()[0]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
