"""Screen settings for temporal EP on generated event-MNIST on a small subset, by VALIDATION
accuracy only (the test split is never scored here, so nothing is chosen on it).

Each ``--variant`` is a name and ``;``-separated ``key=value`` overrides applied after the base
preset (and after ``--set``); the event data are generated once per distinct ``data_options``.

    python benchmarks/event_mnist_screen.py --preset event-mnist-2fc --n-train 3000 --epochs 2 \
        --variant "base:" --variant "lr3e-4:lr=0.0003" [--set key=value] [--json NAME]
"""
from __future__ import annotations

import argparse
import sys
import time

from common import data_dir, print_table, write_json

from stochep.presets import load_preset
from stochep.train import Trainer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="event-mnist-2fc")
    p.add_argument("--n-train", type=int, default=3000,
                   help="generated training digits (val_fraction of them held out)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--variant", action="append", required=True, metavar="NAME:K=V;K=V")
    p.add_argument("--json", default="event_mnist_screen.json")
    args = p.parse_args(argv)
    rows, cache = [], {}
    for spec in args.variant:
        name, _, rest = spec.partition(":")
        extra = [s.strip() for s in rest.split(";") if s.strip()]
        cfg, _ = load_preset(args.preset)
        cfg.apply_overrides([f"data_dir={data_dir('mnist')}", f"epochs={args.epochs}",
                             "eval_test=best"] + args.set + extra)
        # a minimal test split: it is generated but never scored (no test accuracy is read)
        cfg.data_options = {**cfg.data_options, "n_train": args.n_train, "n_test": 1}
        cfg.validate()
        key = repr(sorted(cfg.data_options.items()))
        if key not in cache:
            cache = {key: cfg.load_data()}
        data = cache[key]
        tr = Trainer(cfg, data, progress=False)
        t = time.perf_counter()
        tr._scores_test = lambda val_acc: False  # validation only
        vals = []
        for _ in range(args.epochs):
            tr.fit(stop_after=tr.epoch + 1)
            vals.append(round(100 * tr.history[-1]["val_acc"], 2))
        h = tr.history[-1]
        n_frames = data.x_train.shape[1] if data.x_train.dim() > 2 else 1
        rows.append({"variant": name, "overrides": ";".join(extra), "val_acc": vals,
                     "train_acc": round(100 * h["train_acc"], 2),
                     "rates": [round(r, 3) for r in h["firing_rate"]],
                     "train_s": round(tr.train_time, 1),
                     "frames_per_s": round(len(tr.data.y_train) * n_frames * args.epochs
                                           / tr.train_time, 1),
                     "wall_s": round(time.perf_counter() - t, 1)})
        print_table(rows[-1:], list(rows[-1]))
        sys.stdout.flush()
    print()
    print_table(rows, list(rows[0]))
    write_json(args.json, {
        "command": "python benchmarks/event_mnist_screen.py " + " ".join(argv or sys.argv[1:]),
        "preset": args.preset, "n_train": args.n_train, "epochs": args.epochs,
        "selection": "validation only (test never scored)", "set": args.set, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
