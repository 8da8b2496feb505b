"""Ablation of the deep-net training recipe: one row per option, added one at a time.

Each row starts from the previous row's config and adds one change. For each row it reports,
on the preset's network at initialisation (one batch of training images), the per-layer cosine
of the mean-field EP estimate and of the spiking estimate against BPTT (``stochep diagnose``),
then trains on the first ``--train-subset`` training images (``val_fraction`` of them held out)
for ``--epochs`` and reports the validation accuracy. The test set is not used.

    python benchmarks/learning/recipe.py --model mnist-2fc --train-subset 20000 --epochs 1
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from stochep.rules.ep import EP
from stochep.tools.diagnose import diagnose
from stochep.tools.results import data_dir, print_table, results_dir, write_json
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer

# (label, overrides added on top of the previous row). Row 0 is the preset before this recipe.
ROWS = [
    ("before: rate cost, random-sign 0.5, SGD 0.02",
     ["cost=rate", "calibrate_rate=0.0", "estimator=random-sign", "beta=0.5", "average_last=1",
      "shared_noise=false", "optimizer=sgd", "lr=0.02", "lr_layers=[]", "scheduler=none"]),
    ("+ cost on the state (paper, eq. 8)", ["cost=state"]),
    ("+ rates calibrated to 15% at init", ["calibrate_rate=0.15"]),
    ("+ three-phase beta 0.3, shared noise, average_last 10",
     ["estimator=three-phase", "beta=0.3", "shared_noise=true", "average_last=10"]),
    ("+ per-layer lr 1 / 0.3 / 0.1", ["lr_layers=[1.0, 0.3, 0.1]"]),
    ("+ cosine schedule", ["scheduler=cosine"]),
    ("AdamW 2e-4 instead of SGD with per-layer lr (= the preset)",
     ["optimizer=adamw", "lr=0.0002", "lr_layers=[]"]),
    ("+ evaluate the weights' moving average, ema_decay 0.998", ["ema_decay=0.998"]),
]


def _row(cfg, data, epochs: int, batch: int) -> dict:
    tr = Trainer(cfg, data, progress=False)
    x = tr.inputs(tr.data.x_train[:batch])
    ep = EP.from_config(tr.cfg)
    rep = diagnose(tr.net, x, tr.data.y_train[:batch], ep, seeds=3)
    t0 = time.perf_counter()
    vals = []
    for _ in range(epochs):
        tr.train_epoch()
        tr.epoch += 1
        vals.append(tr.evaluate(*tr.val))
    return {"mf_vs_bptt_cos": [round(r["mf_vs_bptt_cos"], 3) for r in rep["layers"]],
            "stoch_vs_bptt_cos": [round(r["stoch_vs_bptt_cos"], 3) for r in rep["layers"]],
            "init_rates": [round(r["rate"], 3) for r in rep["layers"]],
            "val_acc_per_epoch": vals, "val_acc": vals[-1],
            "train_minutes": (time.perf_counter() - t0) / 60}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mnist-2fc")
    p.add_argument("--train-subset", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=64, help="batch of the gradient diagnostics")
    p.add_argument("--rows", type=int, nargs="+",
                   help="run only these rows (0-based); they replace the same rows of an existing "
                        "JSON of the same model, subset and epochs")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    cfg = load_preset(args.model)
    cfg.data_dir = data_dir(cfg.dataset)
    data = cfg.load_data()
    data.x_train = data.x_train[:args.train_subset]
    data.y_train = data.y_train[:args.train_subset]
    results = []
    for i, (label, sets) in enumerate(ROWS):
        cfg.apply_overrides(sets).validate()
        if args.rows and i not in args.rows:
            continue
        cfg.epochs = args.epochs
        row = {"row": i, "change": label, **_row(cfg, data, args.epochs, args.batch)}
        results.append(row)
        print(f"row {i}: val {row['val_acc']:.4f} mf/bptt {row['mf_vs_bptt_cos']} "
              f"stoch/bptt {row['stoch_vs_bptt_cos']} ({row['train_minutes']:.1f} min)",
              flush=True)
    print_table(results, ["row", "change", "init_rates", "mf_vs_bptt_cos", "stoch_vs_bptt_cos",
                          "val_acc"])
    name = args.json or f"recipe_{args.model}.json"
    meta = {"model": args.model, "train_subset": args.train_subset, "epochs": args.epochs}
    old = json.loads((results_dir() / name).read_text()) if (results_dir() / name).exists() else {}
    if args.rows and all(old.get(k) == v for k, v in meta.items()):  # update those rows only
        keep = [r for r in old["rows"] if r["row"] not in args.rows]
        results = sorted(keep + results, key=lambda r: r["row"])
    write_json(name, {**meta, "rows": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
