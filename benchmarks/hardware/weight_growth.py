"""How far a run's weights grow from their initial range: per layer, the largest |W| and the
std of W at init (the run's seed, before any update) and in a checkpoint. It sizes the headroom
of a fixed-point weight grid (``quantize.headroom``, docs/hardware.md).

    python benchmarks/hardware/weight_growth.py RUN/checkpoint_best.pt --tag NAME
"""
from __future__ import annotations

import argparse
import sys

from stochep.tools.results import write_json
from stochep.training.checkpoint import load_checkpoint
from stochep.training.config import Config
from stochep.training.models import build_network


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--tag", required=True)
    args = p.parse_args(argv)
    ck = load_checkpoint(args.checkpoint)
    cfg = Config.from_dict(ck["config"])
    init = build_network(cfg, tuple(ck["input_shape"]), ck["n_classes"])
    rows = []
    for k, m in enumerate(init.interactions):
        w0, w = m.weight.detach(), ck["model"][f"interactions.{k}.weight"]
        rows.append({"layer": k, "init_max": w0.abs().max().item(), "init_std": w0.std().item(),
                     "max": w.abs().max().item(), "std": w.std().item(),
                     "max_growth": w.abs().max().item() / w0.abs().max().item()})
        print(f"interaction {k}: max |W| {rows[-1]['init_max']:.4f} -> {rows[-1]['max']:.4f} "
              f"({rows[-1]['max_growth']:.1f}x), std {rows[-1]['init_std']:.4f} -> "
              f"{rows[-1]['std']:.4f}")
    write_json(f"weightgrowth_{args.tag}.json", {"checkpoint": args.checkpoint,
                                                  "epoch": ck["epoch"], "layers": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
