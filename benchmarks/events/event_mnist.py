"""Temporal EP on generated event-MNIST (data/event_mnist.py; NOT DVS Gesture): the 3C shape of
``dvsgesture-3c`` at reduced width and steps, three ways on the same events, at equal epochs:

- ``temporal``: temporal EP (frames.py), warm start gamma = 0.3 (eq. 18);
- ``gamma0``: the same with the warm start off (every frame starts from zero);
- ``static``: static EP on the frames summed into one (``data_options.static``).

Reports the best validation accuracy, the test accuracy of that epoch (and of the last one), training time and throughput (frames per second of
training), side by side in one run.

    python benchmarks/events/event_mnist.py [--n-train 2000] [--n-test 1000] [--epochs 3]
        [--variants temporal gamma0 static] [--set key=value] [--json NAME]
"""
from __future__ import annotations

import argparse
import sys
import time

from stochep.tools.results import data_dir, print_table, write_json
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer

# 1/8 width, 30 + 8 + 8 steps per frame. kappa 2 and lam 0.5 instead of Table 3's 1 and 0.25:
# at this size those stayed near chance (static, 3 epochs on 1,800 images: val 14.5%, against
# 62.5% with kappa 2 and lam 0.5, measured with a probe equivalent to `--variants static
# --epochs 3 --set kappa=1.0 --set lam=0.25`). Adding init 0.5 as well (38% alone in that
# probe) silenced the output: temporal, gamma 0 and static all ended at chance (8-12%;
# event_mnist_{temporal,gamma0_static}.json).
REDUCED = ["layers=[{conv: 8, kernel: 5, padding: 1, pool: 2}, {conv: 16, kernel: 5, "
           "padding: 1, pool: 2}, {conv: 32, kernel: 5, padding: 1, pool: 2}]",
           "T_free=30", "T_nudge=8", "n_perclass=10", "batch_size=32", "lr=0.001",
           "scheduler=cosine", "kappa=2.0", "lam=0.5"]
VARIANTS = {"temporal": [], "gamma0": ["gamma=0.0"], "static": []}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key after the reduced settings (repeatable)")
    p.add_argument("--json", default="event_mnist.json", help="result file name")
    args = p.parse_args(argv)
    rows = []
    for name in args.variants:
        cfg = load_preset("dvsgesture-3c")
        opts = f"{{n_train: {args.n_train}, n_test: {args.n_test}, static: {name == 'static'}}}"
        cfg.apply_overrides(["dataset=event-mnist", f"data_dir={data_dir('mnist')}",
                             f"data_options={opts}", f"epochs={args.epochs}"] + REDUCED
                            + VARIANTS[name] + args.set).validate()
        data = cfg.load_data()
        tr = Trainer(cfg, data, progress=False)
        t = time.perf_counter()
        s = tr.fit()
        frames = len(tr.data.y_train) * data.x_train.shape[1] * args.epochs
        rows.append({"variant": name, "frames": data.x_train.shape[1],
                     "val_acc": round(100 * s["best_val_accuracy"], 2),
                     "test_acc": round(100 * s["test_accuracy_at_best_val"], 2),
                     "test_acc_last": round(100 * s["test_accuracy"], 2),
                     "train_s": round(tr.train_time, 1),
                     "frames_per_s": round(frames / tr.train_time, 1),
                     "wall_s": round(time.perf_counter() - t, 1)})
        print_table(rows[-1:], list(rows[-1]))
    print()
    print_table(rows, list(rows[0]))
    write_json(args.json, {
        "command": "python benchmarks/events/event_mnist.py " + " ".join(argv or sys.argv[1:]),
        "n_train": args.n_train, "n_test": args.n_test, "epochs": args.epochs,
        "overrides": REDUCED + args.set, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
