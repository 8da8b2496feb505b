"""``compile=true`` against eager, side by side in one run: recompiles and seconds per epoch.

For each preset, the same run (a training subset whose last batch is short, then evaluation on
a test subset of another batch size) is trained eagerly and compiled, two epochs each. Epoch 1
of the compiled run includes compilation; epoch 2 shows the steady rate and any recompiles
after the first epoch (graphs counted by ``torch._dynamo``'s own counters). Run it once on a
quiet machine and once with a second training job running ("loaded").

    python benchmarks/compile.py --presets mnist-1fc mnist-2fc --batches 20 --tag quiet
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
import torch._dynamo.utils as dynamo_utils
from common import data_dir, print_table, write_json

from stochep.presets import load_preset
from stochep.train import Trainer


def graphs() -> int:
    return dynamo_utils.counters["stats"]["unique_graphs"]


def run(preset: str, batch: int, batches: int, n_test: int, compile: bool) -> dict:
    cfg, _ = load_preset(preset)
    cfg.data_dir = data_dir(cfg.dataset)
    cfg.apply_overrides([f"batch_size={batch}", f"compile={str(compile).lower()}",
                         "val_fraction=0", "epochs=2"]).validate()
    data = cfg.load_data()
    n = batch * batches + batch // 3  # a short last batch, as in a real epoch
    data.x_train, data.y_train = data.x_train[:n], data.y_train[:n]
    data.x_test, data.y_test = data.x_test[:n_test], data.y_test[:n_test]
    tr = Trainer(cfg, data, None, progress=False)
    row = {"preset": preset, "mode": "compile" if compile else "eager", "batch": batch,
           "train_samples": n}
    for epoch in (1, 2):
        g0, t0 = graphs(), time.perf_counter()
        tr.fit(stop_after=epoch)
        row[f"epoch{epoch}_s"] = time.perf_counter() - t0
        row[f"epoch{epoch}_train_s"] = tr.history[-1]["time_s"]
        row[f"graphs_epoch{epoch}"] = graphs() - g0
    row["samples_per_s"] = n / row["epoch2_train_s"]
    row["fell_back"] = tr.dynamics.compile_error
    row["refused"] = tr.dynamics.compile_refused  # the first-step probe's one-line reason
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["mnist-1fc", "mnist-2fc"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=20, help="full batches per epoch")
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--tag", default="quiet", help="condition label (quiet / loaded)")
    args = p.parse_args(argv)
    rows = []
    for preset in args.presets:
        pair = [run(preset, args.batch, args.batches, args.n_test, c) for c in (False, True)]
        pair[1]["vs_eager"] = pair[1]["samples_per_s"] / pair[0]["samples_per_s"]
        rows += pair
        print_table(rows, ["preset", "mode", "epoch1_s", "epoch2_train_s", "samples_per_s",
                           "vs_eager", "graphs_epoch1", "graphs_epoch2"])
    write_json(f"compile_{args.tag}.json", {"tag": args.tag, "threads": torch.get_num_threads(),
                                            "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
