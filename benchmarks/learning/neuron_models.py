"""Accuracy of each neuron model at an equal budget on one network (the models of figure 3).

Trains the same network (default: the ``mnist-1fc`` preset, 784-512-(10 x 10)) with each
registered neuron model for the same number of epochs on the same training images, with the
preset's recipe otherwise unchanged, and reports validation and test accuracy and training
time side by side.

    python benchmarks/learning/neuron_models.py [--preset mnist-1fc] [--train-subset 10000] [--epochs 1]
"""
from __future__ import annotations

import argparse
import sys
import time

from stochep.data import Dataset
from stochep.tools.results import data_dir, print_table, write_json
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer

MODELS = ("hard-sigmoid", "full-precision", "lif", "predictive-coding", "sigma-delta")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="mnist-1fc")
    p.add_argument("--train-subset", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    args = p.parse_args(argv)
    cfg = load_preset(args.preset)
    cfg.data_dir = data_dir(cfg.dataset)
    full = cfg.load_data()
    n = args.train_subset or len(full.y_train)
    data = Dataset(full.name, full.x_train[:n], full.y_train[:n], full.x_test, full.y_test,
                   full.n_classes, full.embedding)
    rows = []
    for name in args.models:
        run = load_preset(args.preset)
        run.data_dir = cfg.data_dir
        run.apply_overrides([f"neuron={name}", f"epochs={args.epochs}"]).validate()
        t = time.perf_counter()
        tr = Trainer(run, data, progress=False)
        s = tr.fit()
        rows.append({"neuron": name, "val_acc": round(100 * s["best_val_accuracy"], 2),
                     "test_acc": round(100 * s["test_accuracy"], 2),
                     "train_s": round(time.perf_counter() - t, 1),
                     "rates": "/".join(f"{r:.2f}" for r in tr.history[-1]["firing_rate"])})
        print_table(rows[-1:], list(rows[-1]))
    print()
    print_table(rows, list(rows[0]))
    write_json(f"neuron_models_{args.preset}.json",
               {"preset": args.preset, "train_subset": n, "epochs": args.epochs,
                "command": "python benchmarks/learning/neuron_models.py " + " ".join(argv or sys.argv[1:]),
                "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
