"""Would batching the exact conv engine's two forward convolutions pay? Measured side by side.

Per pooled interaction and step the exact engine convolves the rates below (for the max-pooling
indices) and the spikes below (the drive). This times, at each pooled layer's real shape of a
preset, the two convolutions as two calls against one call on the two batches stacked
(``torch.cat``, one conv of 2B), alternating, best of ``--repeats``.

    python benchmarks/speed/conv_batching.py [--presets mnist-2c cifar10-5c] [--batch 100]
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from stochep.engine.interactions.conv import ConvPool
from stochep.tools.results import print_table, write_json
from stochep.training.models import build_network
from stochep.training.presets import load_preset

INPUT_SHAPES = {"mnist": (784,), "cifar10": (3, 32, 32)}


def best(fn, repeats: int, inner: int = 5) -> float:
    fn()
    out = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        out = min(out, (time.perf_counter() - t) / inner)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["mnist-2c", "cifar10-5c"])
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    rows = []
    for preset in args.presets:
        cfg = load_preset(preset)
        net = build_network(cfg, INPUT_SHAPES[cfg.dataset], 10)
        for k, inter in enumerate(net.interactions):
            if k == 0 or not isinstance(inter, ConvPool) or not inter.pooled:
                continue  # the input's convolution is once per phase
            r = torch.rand(args.batch, *inter.in_shape)
            s = (torch.rand_like(r) < r).float()
            with torch.no_grad():
                two = best(lambda: (inter._conv(r), inter._conv(s)), args.repeats)
                one = best(lambda: inter._conv(torch.cat([r, s])), args.repeats)
            rows.append({"preset": preset, "interaction": k, "in_shape": str(inter.in_shape),
                         "out_channels": inter.conv_shape[0], "two_calls_ms": 1e3 * two,
                         "one_batched_call_ms": 1e3 * one, "batched_speedup": two / one})
    print_table(rows, list(rows[0]))
    write_json("conv_batching.json", {"batch": args.batch, "threads": torch.get_num_threads(),
                                      "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
