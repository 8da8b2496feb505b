"""EP against surrogate-gradient BPTT on the same preset network, at equal epochs.

Both runs share the preset, seed, data order and every override; only ``algo`` differs (BPTT
also applies the preset's ``rules: {bptt: ...}`` section, e.g. its optimizer and learning rate).

    python benchmarks/learning/ep_vs_bptt.py --model mnist-1fc --epochs 2 [--train-subset N] [--set k=v]
"""
from __future__ import annotations

import argparse
import sys

from stochep.tools.results import data_dir, print_table, write_json
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mnist-1fc")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--bptt-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra overrides for the BPTT run only (e.g. lr=0.0005)")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    rows = []
    for algo in ("ep", "bptt"):
        cfg = load_preset(args.model)
        cfg.data_dir = data_dir(cfg.dataset)
        cfg.apply_overrides(args.set + [f"algo={algo}", f"epochs={args.epochs}"])
        if algo == "bptt":
            cfg.apply_overrides([f"rules.bptt.{kv}" for kv in args.bptt_set])
        cfg.validate()
        data = cfg.load_data()
        if args.train_subset:
            data.x_train = data.x_train[:args.train_subset]
            data.y_train = data.y_train[:args.train_subset]
        tr = Trainer(cfg, data, progress=False)
        tr.fit()
        rows.append({"algo": algo, "optimizer": tr.cfg.optimizer, "lr": tr.cfg.lr,
                     "test_acc_per_epoch": [h["test_acc"] for h in tr.history],
                     "final_test_acc": tr.history[-1]["test_acc"],
                     "s_per_epoch": tr.train_time / args.epochs})
        print(rows[-1], flush=True)
    print_table(rows, ["algo", "optimizer", "lr", "final_test_acc", "s_per_epoch"])
    write_json(f"ep_vs_bptt_{args.model}{args.tag}.json", {
        "model": args.model, "epochs": args.epochs, "train_subset": args.train_subset,
        "overrides": args.set, "bptt_overrides": args.bptt_set, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
