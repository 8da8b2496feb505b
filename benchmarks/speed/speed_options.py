"""What each speed option does to speed AND accuracy, measured side by side in one run.

Part 1 times the spike samplers per element. Part 2 trains the same network with each engine
option (synchronous fp32 baseline, even/odd updates with half the steps, early exit, torch.compile,
bf16 dynamics and, for networks with max-pooling, pooling indices reused for 10 steps) and reports
seconds per epoch and test accuracy.

    python benchmarks/speed/speed_options.py [--dataset digits] [--epochs 5] [--set key=value ...]
    python benchmarks/speed/speed_options.py --dataset mnist --set layers=[512] --train-subset 10000
    python benchmarks/speed/speed_options.py --preset mnist-2c --options baseline pool_every ...
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from stochep.data import load_dataset
from stochep.engine.rng import SpikeRNG
from stochep.tools.results import best_time, data_dir, print_table, write_json
from stochep.training.config import Config
from stochep.training.models import build_network
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer


def sampler_rows(n: int = 256 * 612) -> list[dict]:
    p = torch.rand(n)
    rng, gen = SpikeRNG(0), torch.Generator().manual_seed(0)
    fns = {"torch.bernoulli": lambda: torch.bernoulli(p, generator=gen),
           "rand < p": lambda: (torch.rand(n, generator=gen) < p).float(),
           "xorshift (SpikeRNG)": lambda: (rng.uniform(n) < p).float()}
    rows = []
    for name, fn in fns.items():
        t = best_time(lambda: [fn() for _ in range(20)], 3) / 20
        rows.append({"sampler": name, "ns_per_element": t / n * 1e9})
    base = rows[0]["ns_per_element"]
    for r in rows:
        r["speedup"] = base / r["ns_per_element"]
    return rows


def option_variants(cfg: Config, pooled: bool, pool_every: int = 10
                    ) -> dict[str, tuple[str, dict]]:
    """``key -> (row label, config overrides)``; ``baseline`` first."""
    half = max(1, cfg.T_free // 2)
    variants = {
        "baseline": ("baseline (sync, fp32)", {}),
        "async": (f"async, T_free={half}", {"update": "async", "T_free": half}),
        "early-exit": ("early exit tol=0.05", {"tol": 0.05}),
        "compile": ("torch.compile", {"compile": True}),
        "bf16": ("bf16 dynamics", {"dynamics_dtype": "bfloat16"}),
    }
    if pooled:
        variants["pool_every"] = (f"pool_every={pool_every}", {"pool_every": pool_every})
    return variants


def option_rows(cfg: Config, data, epochs: int, only: list[str] | None = None,
                pool_every: int = 10) -> list[dict]:
    pooled = build_network(cfg, data.input_shape, data.n_classes).pooled
    variants = option_variants(cfg, pooled, pool_every)
    unknown = sorted(set(only or []) - set(variants))
    if unknown:
        raise SystemExit(f"unknown or inapplicable option(s) {unknown}; choose from "
                         f"{sorted(set(variants) - {'baseline'})}")
    keys = ["baseline"] + [k for k in variants if k != "baseline" and (not only or k in only)]
    rows = []
    for name, over in (variants[k] for k in keys):
        c = Config.from_dict({**cfg.to_dict(), **over, "epochs": epochs}).validate()
        tr = Trainer(c, data, progress=False)
        t0 = time.perf_counter()
        tr.fit()
        wall = time.perf_counter() - t0
        times = [h["time_s"] for h in tr.history]
        rows.append({"option": name, "first_epoch_s": times[0],
                     "epoch_s": min(times[1:]) if len(times) > 1 else times[0],
                     "test_acc": tr.history[-1]["test_acc"], "best_val_acc": tr.best_val_acc,
                     "test_acc_at_best_val": tr.test_acc_at_best_val,
                     "wall_s": wall, "compile_error": tr.dynamics.compile_error})
    base = rows[0]["epoch_s"]
    for r in rows:
        r["speedup"] = base / r["epoch_s"]
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--preset", help="start from this preset (its dataset) instead of the defaults")
    p.add_argument("--options", nargs="+", metavar="OPTION",
                   help="options to compare with the baseline: async early-exit compile bf16 "
                        "pool_every (default: all that apply)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--pool-every", type=int, default=10, help="K of the pool_every option")
    p.add_argument("--train-subset", type=int, default=0, help="use the first N training images")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", default="speed_options.json")
    args = p.parse_args(argv)
    cfg = load_preset(args.preset) if args.preset else Config(dataset=args.dataset)
    cfg.apply_overrides(args.set).validate()
    data = load_dataset(cfg.dataset, None if cfg.dataset == "digits" else data_dir(cfg.dataset))
    if args.train_subset:
        data.x_train, data.y_train = data.x_train[:args.train_subset], data.y_train[:args.train_subset]
    s_rows = sampler_rows()
    print_table(s_rows, ["sampler", "ns_per_element", "speedup"])
    o_rows = option_rows(cfg, data, args.epochs, args.options, args.pool_every)
    print_table(o_rows, ["option", "first_epoch_s", "epoch_s", "speedup", "test_acc", "best_val_acc"])
    write_json(args.json, {"config": cfg.to_dict(), "epochs": args.epochs,
                           "samplers": s_rows, "options": o_rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
