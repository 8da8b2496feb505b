"""Train one preset on its real dataset within a time budget; accuracy per epoch and wall time.

The model trains in its own run directory (checkpointed every epoch, so an interrupted
benchmark resumes with --resume) until its epoch count or its time budget runs out. Data come
from ../shared/data/<dataset> or $STOCHEP_<DATASET>_DIR.

    python benchmarks/learning/train_preset.py --model mnist-2c --minutes 55 [--train-subset N] [--set k=v]
"""
from __future__ import annotations

import argparse
import sys
import time

from stochep.data import DATASETS
from stochep.tools.results import data_dir, results_dir, write_json
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mnist-1fc")
    p.add_argument("--minutes", type=float, default=55.0,
                   help="budget of training time (evaluation excluded); no epoch starts that would overrun it")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", help="run directory (default benchmarks/results/runs/<model>)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--train-subset", type=int, default=0, help="train on the first N images")
    p.add_argument("--tag", default="", help="suffix of the JSON and run directory names")
    args = p.parse_args(argv)
    cfg = load_preset(args.model)
    paper = cfg.paper
    cfg.data_dir = data_dir(DATASETS[cfg.dataset].data_folder())
    cfg.apply_overrides(args.set).validate()
    name = args.model + args.tag
    out = args.out or str(results_dir() / "runs" / name)
    data = cfg.load_data()
    if args.train_subset:
        data.x_train = data.x_train[:args.train_subset]
        data.y_train = data.y_train[:args.train_subset]
    tr = Trainer(cfg, data, out, progress=False)
    if args.resume:
        tr.resume()
    t0 = time.perf_counter()
    while tr.epoch < cfg.epochs:
        tr.fit(stop_after=tr.epoch + 1)
        row = tr.history[-1]
        scores = "".join(f"{k} {row[k]:.4f} " for k in ("val_acc", "test_acc") if row[k] is not None)
        print(f"{args.model} epoch {row['epoch']}: train_acc {row['train_acc']:.4f} "
              f"{scores}({row['time_s']:.0f}s)", flush=True)
        # The budget counts training time (tr.train_time, resumed runs included); the per-epoch
        # evaluation of validation and test sets is reported in wall_minutes but not budgeted.
        if tr.train_time + row["time_s"] * 1.05 > args.minutes * 60:
            break
    hist = tr.history
    # eval_test=best scores the test set only at new best validation and the last configured
    # epoch; a run the budget cut short is scored here so final_test_acc is never missing
    final = hist[-1]["test_acc"]
    if final is None:
        final = tr.evaluate(data.x_test, data.y_test)
    write_json(f"train_{name}.json", {
        "model": args.model, "overrides": args.set, "config": cfg.to_dict(),
        "train_subset": args.train_subset or len(data.y_train), "n_test": len(data.y_test),
        "paper_accuracy": paper.get("accuracy"), "epochs_run": tr.epoch,
        "val_fraction": cfg.val_fraction,
        "val_acc_per_epoch": [h.get("val_acc") for h in hist],
        "test_acc_per_epoch": [h["test_acc"] for h in hist],
        "train_acc_per_epoch": [h["train_acc"] for h in hist],
        "best_epoch": tr.best_epoch, "best_val_acc": tr.best_val_acc,
        "test_acc_at_best_val": tr.test_acc_at_best_val, "final_test_acc": final,
        "train_minutes": tr.train_time / 60, "wall_minutes": (time.perf_counter() - t0) / 60,
        "firing_rate_last_epoch": hist[-1]["firing_rate"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
