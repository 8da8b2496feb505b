"""Choosing the integrate-and-fire threshold of a NIR export on held-out training images.

NIR's reset to zero discards the charge above threshold, so a neuron fires below the rate it
stands for; a lower threshold makes up for part of it. For each ``threshold_scale``: the exported
CubaLIF graph run by the reference executor (NIR's reset; snnTorch gives the same predictions,
nir_mnist.py), its accuracy and its agreement with stochep's mean-field predictions on the last
``--n`` training images (never the test set).

    OMP_NUM_THREADS=1 python benchmarks/deploy/nir_threshold.py --checkpoint R/checkpoint_best.pt \
        --data-dir DIR --name mnist-2fc
"""
from __future__ import annotations

import argparse

from stochep.data import load_dataset
from stochep.tools.nir import export_nir
from stochep.tools.nir.measure import graph_scores, stochep_scores
from stochep.tools.results import write_json
from stochep.training.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir")
    ap.add_argument("--name", required=True, help="result file nir_threshold_<name>.json")
    ap.add_argument("--n", type=int, default=1000, help="the last N training images")
    ap.add_argument("--scales", default="1.0,0.95,0.9,0.85,0.8")
    args = ap.parse_args()
    tr = Trainer.from_checkpoint(args.checkpoint, score_only=True)
    data = load_dataset(tr.cfg.dataset, args.data_dir)
    x = data.x_train[-args.n:].float().reshape(args.n, -1)
    y = data.y_train[-args.n:]
    mf = stochep_scores(tr.net, x).argmax(1)
    rows = [{"threshold_scale": "stochep mean field", "accuracy": (mf == y).float().mean().item()}]
    for c in map(float, args.scales.split(",")):
        p = graph_scores(export_nir(tr.net, threshold_scale=c), x, "reference").argmax(1)
        rows.append({"threshold_scale": c, "accuracy": (p == y).float().mean().item(),
                     "agree_mean_field": (p == mf).float().mean().item()})
        print(rows[-1], flush=True)
    write_json(f"nir_threshold_{args.name}.json", {
        "checkpoint": args.checkpoint, "images": f"last {args.n} training images",
        "rows": rows})


if __name__ == "__main__":
    main()
