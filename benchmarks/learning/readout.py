"""Readout averaging on a trained run: validation accuracy per ``readout_average``, then the test
accuracy of the one the validation set chooses.

A spiking net's output state fluctuates with its spikes; ``readout_average = k`` predicts from
its mean over the free phase's last k steps. This re-scores a run's best-validation checkpoint
(chosen with the readout it trained with) for each k on the run's own validation split, picks
the k with the highest validation accuracy (the smallest k on ties), and scores the test set
with that k only: the test set chooses nothing.

    python benchmarks/learning/readout.py --run benchmarks/results/runs/cifar10-5c-pool5-b04-e16 \
        --train-subset 10000 --ks 1 5 10 20
"""
from __future__ import annotations

import argparse
import os
import sys

from stochep.tools.results import data_dir, print_table, write_json
from stochep.training.checkpoint import load_checkpoint
from stochep.training.config import Config
from stochep.training.trainer import Trainer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a run directory with checkpoint_best.pt")
    p.add_argument("--train-subset", type=int, default=0,
                   help="the --train-subset the run trained with (its validation split)")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10, 20])
    args = p.parse_args(argv)
    path = os.path.join(args.run, "checkpoint_best.pt")
    ck = load_checkpoint(path)
    cfg = Config.from_dict(ck["config"])
    cfg.data_dir = data_dir(cfg.dataset)
    data = cfg.load_data()
    if args.train_subset:
        data.x_train = data.x_train[:args.train_subset]
        data.y_train = data.y_train[:args.train_subset]
    tr = Trainer(cfg, data, None, progress=False, calibrate=False)
    tr.load_state_dict(ck)
    if tr.val is None:
        raise SystemExit("the run has no validation split (val_fraction=0): nothing to choose "
                         "k with")
    rows = []
    for k in args.ks:  # evaluate() reads the readout from the run's config
        tr.cfg.set("readout_average", k)
        tr.cfg.validate()
        rows.append({"readout_average": k, "val_acc": tr.evaluate(*tr.val), "test_acc": None})
        print_table(rows[-1:], ["readout_average", "val_acc"])
    best = max(rows, key=lambda r: (r["val_acc"], -r["readout_average"]))
    tr.cfg.set("readout_average", best["readout_average"])
    best["test_acc"] = tr.evaluate(data.x_test, data.y_test)
    print_table(rows, ["readout_average", "val_acc", "test_acc"])
    name = os.path.basename(os.path.normpath(args.run))
    write_json(f"readout_{name}.json", {
        "run": args.run, "checkpoint_epoch": ck["epoch"], "train_subset": len(data.y_train),
        "trained_readout_average": ck["config"].get("readout_average", 1),
        "test_acc_at_best_val_as_trained": ck["test_acc_at_best_val"],
        "chosen_readout_average": best["readout_average"], "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
