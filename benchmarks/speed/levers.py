"""Training rate of step-count levers, side by side in one process.

Each variant is a preset with ``--set`` overrides (``NAME=key=value,key=value``); every variant
trains real :class:`~stochep.training.trainer.Trainer` epochs (shuffling, phases, contrast,
optimizer; evaluation excluded) on the same first ``--samples`` MNIST training images. The
variants run in turn, ``--repeats`` times, and each keeps its fastest epoch, so load that comes
and goes on a shared machine hits all of them alike.

    OMP_NUM_THREADS=1 python benchmarks/speed/levers.py --preset mnist-1fc --samples 3200 \\
        --variant preset= --variant sweep20=start=sweep,T_free=20,T_nudge=10,average_last=5 \\
        --json levers_mnist-1fc.json
"""
from __future__ import annotations

import argparse
import sys
import time

from stochep.tools.results import data_dir, print_table, write_json
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer


def build(preset: str, sets: list[str], samples: int) -> Trainer:
    cfg = load_preset(preset)
    cfg.data_dir = data_dir(cfg.dataset)
    cfg.apply_overrides(["val_fraction=0", *sets]).validate()
    data = cfg.load_data()
    data.x_train, data.y_train = data.x_train[:samples], data.y_train[:samples]
    return Trainer(cfg, data, None, progress=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="mnist-1fc")
    p.add_argument("--variant", action="append", required=True,
                   help="NAME=key=value,key=value (NAME= for the preset as it is)")
    p.add_argument("--samples", type=int, default=3200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    variants = {}
    for v in a.variant:
        name, _, sets = v.partition("=")
        variants[name] = [s for s in sets.split(",") if s]
    trainers = {n: build(a.preset, s, a.samples) for n, s in variants.items()}
    best = {n: float("inf") for n in variants}
    for _ in range(a.repeats):
        for n, tr in trainers.items():
            t = time.perf_counter()
            tr.train_epoch()
            best[n] = min(best[n], time.perf_counter() - t)
    base = next(iter(variants))
    rows = []
    for n, tr in trainers.items():
        c = tr.cfg
        steps = c.T_free + c.T_nudge * (2 if c.estimator == "three-phase" else 1)
        rows.append({"variant": n, "sets": ",".join(variants[n]), "steps": steps,
                     "batch": c.batch_size, "samples_s": round(a.samples / best[n], 1),
                     "vs_first": round(best[base] / best[n], 2)})
    print_table(rows, list(rows[0]))
    if a.json:
        write_json(a.json, {"command": " ".join(sys.argv), "preset": a.preset,
                            "samples": a.samples, "repeats": a.repeats, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
