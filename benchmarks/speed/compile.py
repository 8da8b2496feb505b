"""``compile=true`` against eager, side by side in one run: recompiles and seconds per epoch.

For each preset the same run (a training subset whose last batch is short, then evaluation on
a test subset of another batch size) is trained eagerly and compiled, the two runs taking
turns epoch by epoch, so a change in the machine's load hits both alike. Epoch 1 of the
compiled run includes compilation; the later epochs give the steady rate (``vs_eager``: the
eager run's training seconds over the compiled run's, epochs 2 on) and any recompiles after
the first epoch (graphs counted by ``torch._dynamo``'s own counters). Run it once on a quiet
machine and once with a second training job running ("loaded").

    python benchmarks/speed/compile.py --presets mnist-1fc mnist-2fc --batches 20 --epochs 4 --tag quiet
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch._dynamo.utils as dynamo_utils

from stochep.tools.results import data_dir, print_table, write_json
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer


def graphs() -> int:
    return dynamo_utils.counters["stats"]["unique_graphs"]


def trainer(preset: str, batch: int, batches: int, n_test: int, compile: bool, epochs: int):
    cfg = load_preset(preset)
    cfg.data_dir = data_dir(cfg.dataset)
    cfg.apply_overrides([f"batch_size={batch}", f"compile={str(compile).lower()}",
                         "val_fraction=0", f"epochs={epochs}"]).validate()
    data = cfg.load_data()
    n = batch * batches + batch // 3  # a short last batch, as in a real epoch
    data.x_train, data.y_train = data.x_train[:n], data.y_train[:n]
    data.x_test, data.y_test = data.x_test[:n_test], data.y_test[:n_test]
    return Trainer(cfg, data, None, progress=False), n


def run_pair(preset: str, batch: int, batches: int, n_test: int, epochs: int) -> list[dict]:
    """Eager and compiled runs of ``preset``, alternating epoch by epoch."""
    runs = {c: trainer(preset, batch, batches, n_test, c, epochs) for c in (False, True)}
    rows = {c: {"preset": preset, "mode": "compile" if c else "eager", "batch": batch,
                "train_samples": n, "epoch_train_s": [], "graphs_per_epoch": []}
            for c, (_, n) in runs.items()}
    for epoch in range(1, epochs + 1):
        for c, (tr, _) in runs.items():
            g0 = graphs()
            tr.fit(stop_after=epoch)
            rows[c]["epoch_train_s"].append(tr.history[-1]["time_s"])
            rows[c]["graphs_per_epoch"].append(graphs() - g0)
    for c, (tr, n) in runs.items():
        row = rows[c]
        row["epoch1_train_s"] = row["epoch_train_s"][0]
        row["later_train_s"] = sum(row["epoch_train_s"][1:])
        row["graphs_epoch1"] = row["graphs_per_epoch"][0]
        row["graphs_later"] = sum(row["graphs_per_epoch"][1:])
        row["samples_per_s"] = n * (epochs - 1) / row["later_train_s"]
        row["fell_back"] = tr.dynamics.compile_error
        row["refused"] = tr.dynamics.compile_refused  # the probe's one-line reason
    rows[True]["vs_eager"] = rows[False]["later_train_s"] / rows[True]["later_train_s"]
    return [rows[False], rows[True]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["mnist-1fc", "mnist-2fc"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=20, help="full batches per epoch")
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=4, help="epochs per run (the first compiles)")
    p.add_argument("--tag", default="quiet", help="condition label (quiet / loaded)")
    args = p.parse_args(argv)
    rows = []
    for preset in args.presets:
        rows += run_pair(preset, args.batch, args.batches, args.n_test, args.epochs)
        print_table(rows, ["preset", "mode", "epoch1_train_s", "later_train_s", "samples_per_s",
                           "vs_eager", "graphs_epoch1", "graphs_later"])
    write_json(f"compile_{args.tag}.json", {"tag": args.tag, "threads": torch.get_num_threads(),
                                            "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
